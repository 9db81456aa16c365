// Package local is the blob.Store on a local directory, Tenantry's embedded
// default.
//
// Layout: an object "a/b" of tenant T is the file
// "<dir>/tenants/T/a.dir/b.obj". The suffixes keep an object "a" and the
// directory of "a/b" apart (S3 allows both), and no key can name a temporary
// file (".tmp"). Each file starts with a 512-byte header holding the content
// type and ETag, so that data and metadata appear together.
//
// Safety: every access goes through an os.Root opened on the tenant's own
// directory, so neither a key nor a symlink planted in the tree can reach a
// file outside it. Writes stream into a temporary file beside the target,
// are fsynced (unless Config.NoSync), and renamed into place: a reader sees
// the old object or the new one, never a part.
//
//	store, err := local.New("/var/lib/tenantry/blobs", nil)
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//	info, err := store.Put(ctx, "reports/q3.pdf", body, blob.PutOptions{Size: n, ContentType: "application/pdf"})
//
// Listing walks the prefix's directory and sorts, in time proportional to
// the objects under it; use blob/s3 for tenants with very many objects.
// Presigned URLs are not supported (blob.ErrNotSupported).
package local

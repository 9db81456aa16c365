// Package s3 is the blob.Store on S3-compatible object storage, through the
// AWS SDK for Go v2. It is tested against versitygw (posix backend).
//
// Every tenant's objects live under "tenants/<tenant-id>/" of the shared
// bucket, the prefix taken from the tenant in the context. Uploads up to
// Config.PartSize are one PutObject; larger or unsized ones a multipart
// upload, aborted on any failure, holding one part in memory at a time.
//
// Defence in depth, so that a bug in Tenantry cannot cross tenants:
//
//   - Per-tenant credentials (Config.TenantCredentials): each tenant's
//     requests are signed with its own access key, which the server lets
//     reach only the tenant's prefix. On versitygw the account is created
//     with VersityAdmin.CreateUser (role "user") and confined by
//     Store.GrantTenant, a bucket-policy statement on
//     "tenants/<id>/*" plus s3:ListBucket with an s3:prefix condition.
//     versitygw enforces both (tested: another tenant's objects, the bucket
//     root, the policy itself and "../" keys are all AccessDenied). On AWS,
//     use the same statements for a handful of tenants, or IAM ABAC session
//     policies (${aws:PrincipalTag/tenant}) at scale: bucket policies are
//     capped at 20 KB.
//   - A bucket per tenant (Config.BucketFor), for a dedicated tier; created
//     by EnsureBucket.
//
// Presigned URLs (Presign) are signed for the tenant's key only, with the
// tenant's credentials when configured; a PUT URL signs the exact
// Content-Length.
//
//	store, err := s3.New(&s3.Config{
//		Endpoint: "http://127.0.0.1:7070", PathStyle: true,
//		Bucket: "tenantry", AccessKey: ak, SecretKey: sk,
//	})
//	if err != nil {
//		return err
//	}
//	if err := store.EnsureBucket(ctx, ""); err != nil {
//		return err
//	}
//	obj, err := store.Get(ctx, "reports/q3.pdf") // ctx carries the tenant
//
// versitygw limits: its posix backend stores "a" and "a/b" as a file and a
// directory of one name, so it cannot hold both (blob.ErrConflict); its
// accounts carry no IAM policy of their own in the admin API used here, so
// confinement is by bucket policy or bucket ownership.
package s3

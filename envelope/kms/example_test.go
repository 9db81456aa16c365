package kms_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tenantry/tenantry/envelope/kms"
)

func Example() {
	dir, _ := os.MkdirTemp("", "kms")
	defer os.RemoveAll(dir)
	k, _ := kms.NewLocal(filepath.Join(dir, "kek"))
	ctx := context.Background()

	dek := make([]byte, 32)
	wrapped, _ := k.Wrap(ctx, "acme-id", dek)
	_, err := k.Unwrap(ctx, "globex-id", wrapped)
	fmt.Println("other tenant:", err)

	_ = k.Destroy(ctx, "acme-id")
	_, err = k.Unwrap(ctx, "acme-id", wrapped)
	fmt.Println("after destroy:", errors.Is(err, kms.ErrKeyDestroyed))
	// Output:
	// other tenant: tenant key not found
	// after destroy: true
}

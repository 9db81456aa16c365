package envelope_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tenantry/tenantry/envelope"
	"github.com/tenantry/tenantry/envelope/kms"
)

func Example() {
	dir, _ := os.MkdirTemp("", "kek")
	defer os.RemoveAll(dir)
	k, _ := kms.NewLocal(filepath.Join(dir, "keys"))
	env, _ := envelope.New(k, nil)
	ctx := context.Background()

	tenantID := "6f1c9f3e-3b8e-4f7a-9a51-0c1d2e3f4a5b"
	aad := []byte("customers.email:42") // where the value lives
	ct, _ := env.Encrypt(ctx, tenantID, []byte("ada@example.org"), aad)
	pt, _ := env.Decrypt(ctx, tenantID, ct, aad)
	fmt.Println(string(pt))

	_ = env.Destroy(ctx, tenantID) // the tenant asked to be forgotten
	_, err := env.Decrypt(ctx, tenantID, ct, aad)
	fmt.Println(errors.Is(err, envelope.ErrKeyDestroyed))
	// Output:
	// ada@example.org
	// true
}

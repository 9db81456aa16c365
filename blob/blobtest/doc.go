// Package blobtest holds the conformance suite every blob.Store passes, the
// table of hostile keys, and helpers that make tenants for tests.
//
// A backend's tests run the suite with a Harness:
//
//	func TestConformance(t *testing.T) {
//		t.Parallel()
//		blobtest.Run(t, blobtest.Harness{
//			NewStore: func(t *testing.T) blob.Store {
//				s, err := local.New(t.TempDir(), nil)
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			},
//		})
//	}
package blobtest

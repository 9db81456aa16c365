package mtls_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/tenantry/tenantry/certs"
	"github.com/tenantry/tenantry/mtls"
)

func Example() {
	dir, _ := os.MkdirTemp("", "mtls-example")
	defer os.RemoveAll(dir)

	// A CA and two service certificates, as `tenantry certs` writes them.
	ca, _ := certs.InitCA(dir, "example.org")
	source := func(name string) *mtls.FileSource {
		leaf, _ := certs.Issue(ca, certs.Request{Kind: certs.Service, Name: name})
		certPath, keyPath, _ := leaf.WriteFiles(dir)
		src, err := mtls.NewFileSource(&mtls.FileConfig{
			CertFile: certPath, KeyFile: keyPath,
			CAFile: filepath.Join(dir, certs.CAFile), TrustDomain: "example.org",
		})
		if err != nil {
			panic(err)
		}
		return src
	}
	billing, orders := source("billing"), source("orders")

	serverTLS, _ := mtls.ServerTLS(billing, nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := mtls.PeerIdentity(r, billing.TrustDomain())
		if err != nil {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "hello %s", id.Name)
	})}
	go srv.Serve(tls.NewListener(ln, serverTLS))
	defer srv.Close()

	clientTLS, _ := mtls.ClientTLS(orders, nil)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}
	resp, err := client.Get("https://" + ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output: hello orders
}

// A Go client of ledgerd's gRPC port, built with Debian's golang-go and golang-google-grpc-dev (no
// module downloads) against stubs that protoc-gen-go and protoc-gen-go-grpc make from proto/ at
// test time (Tests/GRPC/run-go). It runs the seed scenario: an interview of 37 minutes of
// transcription reserved by items, 35 minutes committed, 5 refunded, the balance read, and the
// same reserve sent again to see it replayed.
//
//	seed -addr 127.0.0.1:7444 -tls ledger-data/tls
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "tokenledger/v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7444", "ledgerd's gRPC port")
	dir := flag.String("tls", "ledger-data/tls", "folder with ca.pem, admin.pem, admin-key.pem")
	tenant := flag.String("tenant", "seed-go", "a new tenant for the scenario")
	flag.Parse()

	certificate, err := tls.LoadX509KeyPair(filepath.Join(*dir, "admin.pem"), filepath.Join(*dir, "admin-key.pem"))
	check(err)
	caPEM, err := ioutil.ReadFile(filepath.Join(*dir, "ca.pem"))
	check(err)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		log.Fatal("no CA certificate in ca.pem")
	}
	credentials := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{certificate}, RootCAs: roots, ServerName: "localhost",
		MinVersion: tls.VersionTLS13,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connection, err := grpc.DialContext(ctx, *addr, grpc.WithTransportCredentials(credentials), grpc.WithBlock())
	check(err)
	defer connection.Close()
	ledger := pb.NewLedgerClient(connection)

	_, err = ledger.CreateTenant(ctx, &pb.CreateTenantRequest{RequestId: *tenant + "-create", Tenant: *tenant})
	check(err)
	_, err = ledger.Purchase(ctx, &pb.PurchaseRequest{RequestId: *tenant + "-purchase", Tenant: *tenant, MoneyMinor: 5000})
	check(err)

	items := &pb.PricedItems{Items: []*pb.PricedItem{{Feature: "transcription", Quantity: 37}}}
	reserve := &pb.ReserveRequest{
		RequestId: *tenant + "-reserve", Tenant: *tenant, HoldId: "interview-1",
		Amount: &pb.ReserveRequest_Items{Items: items},
	}
	var headers metadata.MD
	reserved, err := ledger.Reserve(ctx, reserve, grpc.Header(&headers))
	check(err)
	fmt.Printf("reserved %d lsn %s\n", reserved.Hold.Amount, first(headers, "tokenledger-lsn"))

	committed, err := ledger.Commit(ctx, &pb.CommitRequest{
		RequestId: *tenant + "-commit", Tenant: *tenant, HoldId: "interview-1", Amount: 35 * 8,
	})
	check(err)
	fmt.Printf("committed %d released %d\n", committed.Captured, committed.Released)

	refunded, err := ledger.Refund(ctx, &pb.RefundRequest{
		RequestId: *tenant + "-refund", Tenant: *tenant, HoldId: "interview-1", Amount: 5 * 8,
	})
	check(err)
	fmt.Printf("refunded %d\n", refunded.Refunded)

	balance, err := ledger.Balance(ctx, &pb.BalanceRequest{Tenant: *tenant})
	check(err)
	fmt.Printf("balance available %d spent %d reserved %d\n", balance.Available, balance.Spent, balance.Reserved)

	headers = metadata.MD{}
	_, err = ledger.Reserve(ctx, reserve, grpc.Header(&headers))
	check(err)
	fmt.Printf("replayed %s\n", first(headers, "tokenledger-replayed"))

	_, err = ledger.Reserve(ctx, &pb.ReserveRequest{
		RequestId: *tenant + "-too-much", Tenant: *tenant, HoldId: "interview-2",
		Amount: &pb.ReserveRequest_Tokens{Tokens: 1 << 40},
	})
	fmt.Printf("too much: %s\n", status.Code(err))
	if status.Code(err) != codes.FailedPrecondition {
		log.Fatalf("expected FAILED_PRECONDITION, got %v", err)
	}
}

func first(headers metadata.MD, key string) string {
	if values := headers.Get(key); len(values) > 0 {
		return values[0]
	}
	return ""
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

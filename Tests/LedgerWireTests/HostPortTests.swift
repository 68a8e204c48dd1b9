import LedgerWire
import Testing

@Suite("HOST:PORT parsing")
struct HostPortTests {
    @Test(
        "accepted forms",
        arguments: [
            ("127.0.0.1:7443", "127.0.0.1", 7443), ("localhost:0", "localhost", 0), (":9000", "default", 9000),
            ("[::1]:7443", "::1", 7443), ("[fe80::1%eth0]:1", "fe80::1%eth0", 1), ("[]:5", "default", 5),
        ])
    func accepted(text: String, host: String, port: Int) throws {
        #expect(try HostPort(parsing: text, emptyHost: "default") == HostPort(host: host, port: port))
    }

    @Test(
        "refused forms, each with a reason",
        arguments: [
            ("7443", "expected HOST:PORT"), ("host:", "must be 0 to 65535"), ("host:65536", "must be 0 to 65535"),
            ("host:-1", "must be 0 to 65535"), ("host:http", "must be 0 to 65535"), ("[::1]7443", "expected [HOST]:PORT"),
            ("[::1", "expected [HOST]:PORT"),
        ])
    func refused(text: String, reason: String) {
        #expect { try HostPort(parsing: text, emptyHost: "x") } throws: { "\($0)".contains(reason) }
    }

    @Test("a caller's port range")
    func portRange() {
        #expect(throws: HostPortError.self) { try HostPort(parsing: "h:0", emptyHost: "x", ports: 1...65_535) }
    }
}

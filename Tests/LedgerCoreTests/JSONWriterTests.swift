import LedgerCore
import Testing

@Suite struct JSONWriterTests {
    @Test("keys keep their order; strings escape what JSON needs; the reader reads it back")
    func writesWhatTheReaderReads() throws {
        let tricky = "quote \" backslash \\ newline \n tab \t bell \u{7} é 🙂"
        let value = OrderedJSON.object([
            ("z", .unsigned(18_446_744_073_709_551_615)), ("a", .string(tricky)), ("m", .array([.bool(true), .null, .signed(5)])),
        ])
        #expect(value.text.hasPrefix("{\"z\":18446744073709551615,\"a\":"))
        guard case .object(let fields) = try JSONValue.parse(Array(value.text.utf8)) else {
            Issue.record("not an object")
            return
        }
        #expect(fields["a"] == .string(tricky))
        #expect(fields["z"] == .integer(UInt64.max))
        // The reader refuses negative numbers (a catalog has none); the writer writes them.
        #expect(OrderedJSON.array([.signed(-5), .signed(Int64.min)]).text == "[-5,-9223372036854775808]")
    }

    @Test(
        "decimals are written with their places, rounded, and never as NaN",
        arguments: [
            (0.0, 3, "0.000"), (1.5, 0, "2"), (12.3456, 3, "12.346"), (0.0005, 3, "0.001"), (-2.25, 1, "-2.3"),
            (1_234_567.8, 1, "1234567.8"), (Double.nan, 2, "null"), (-0.0001, 2, "0.00"),
        ] as [(Double, Int, String)])
    func decimals(value: Double, places: Int, expected: String) {
        #expect(OrderedJSON.decimal(value, places: places).text == expected)
    }
}

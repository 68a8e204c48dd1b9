/// JSON to write, with object keys in the order given: the one writer of the project, beside
/// `JSONValue`, its reader. tokenctl's `--json` output, the webhook sink's bodies and cursor file,
/// the events' JSON form and ledger-load's report are all written with it, so that escaping and
/// number formats are the same everywhere and keys keep their documented order.
public indirect enum OrderedJSON: Sendable, Equatable {
    case object([(String, OrderedJSON)])
    case array([OrderedJSON])
    case string(String)
    case unsigned(UInt64)
    case signed(Int64)
    /// A decimal number with a fixed count of digits after the point (a measured rate, seconds).
    case decimal(Double, places: Int)
    case bool(Bool)
    case null

    public var text: String {
        var out = ""
        write(to: &out)
        return out
    }

    public func write(to out: inout String) {
        switch self {
        case .object(let fields):
            out += "{"
            for (index, (key, value)) in fields.enumerated() {
                if index > 0 { out += "," }
                out += JSONValue.quoted(key)
                out += ":"
                value.write(to: &out)
            }
            out += "}"
        case .array(let values):
            out += "["
            for (index, value) in values.enumerated() {
                if index > 0 { out += "," }
                value.write(to: &out)
            }
            out += "]"
        case .string(let value): out += JSONValue.quoted(value)
        case .unsigned(let value): out += String(value)
        case .signed(let value): out += String(value)
        case .decimal(let value, let places): out += Self.decimal(value, places: places)
        case .bool(let value): out += value ? "true" : "false"
        case .null: out += "null"
        }
    }

    /// `value` rounded to `places` digits after the point, without Foundation's formatting (JSON
    /// has no NaN or infinity: those are written as null).
    static func decimal(_ value: Double, places: Int) -> String {
        guard value.isFinite else { return "null" }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e18 else { return String(value) }
        let whole = UInt64(scaled)
        let divisor = UInt64(scale)
        var text = (value < 0 && whole > 0 ? "-" : "") + String(whole / divisor)
        if places > 0 {
            let fraction = String(whole % divisor)
            text += "." + String(repeating: "0", count: places - fraction.count) + fraction
        }
        return text
    }

    public static func == (lhs: OrderedJSON, rhs: OrderedJSON) -> Bool { lhs.text == rhs.text }
}

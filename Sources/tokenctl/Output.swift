import Foundation
import LedgerCore
import LedgerWire

/// tokenctl's JSON output: LedgerCore's ordered writer.
typealias JSON = OrderedJSON

extension OrderedJSON {
    /// A time as ISO 8601, or null for 0 ("none" on the wire).
    static func time(_ milliseconds: Int64) -> OrderedJSON {
        milliseconds == 0 ? .null : .string(LedgerTime(millisecondsSinceEpoch: milliseconds).iso8601)
    }
}

/// What a command prints: text for people, JSON for scripts (one object, or one per line).
struct Output {
    var human: String
    var json: [JSON]

    init(human: String, json: JSON) {
        self.human = human
        self.json = [json]
    }

    init(human: String, jsonLines: [JSON]) {
        self.human = human
        json = jsonLines
    }

    /// A change to a hold (reserve, charge, extend, increase, commit, release, refund): a headline
    /// and the hold's fields; in JSON the tenant, the call's own figures, the hold and the request id.
    static func holdChange(
        _ headline: String, tenant: TenantID, _ figures: [(String, JSON)] = [], hold: Tokenledger_V1_Hold, requestID: RequestID
    ) -> Output {
        Output(
            human: headline + "\n" + Format.fields(Render.holdFields(hold)),
            json: .object(
                [("tenant", .string(tenant.rawValue))] + figures + [("hold", Render.holdJSON(hold)), ("request_id", .string(requestID.rawValue))]))
    }

    func print(json asJSON: Bool) {
        let text = asJSON ? json.map { $0.text + "\n" }.joined() : (human.hasSuffix("\n") ? human : human + "\n")
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}

enum Format {
    /// 2999720 -> "2,999,720".
    static func tokens(_ value: UInt64) -> String {
        let digits = String(value)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return out
    }

    static func time(_ milliseconds: Int64) -> String {
        milliseconds == 0 ? "-" : LedgerTime(millisecondsSinceEpoch: milliseconds).iso8601
    }

    /// Label/value lines with the values aligned.
    static func fields(_ rows: [(String, String)]) -> String {
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n")
    }

    /// A table: a header row and rows, columns aligned; columns named in `right` align right.
    static func table(_ header: [String], _ rows: [[String]], right: Set<Int> = []) -> String {
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                let pad = String(repeating: " ", count: widths[index] - cell.count)
                return right.contains(index) ? pad + cell : cell + pad
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}

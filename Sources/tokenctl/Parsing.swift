import ArgumentParser
import LedgerCore

/// Parsers for flag values; each failure is a usage error naming the flag.
enum Parse {
    /// A whole number of tokens; `_` and `,` separators are allowed (1_000_000, 1,000,000).
    static func amount(_ text: String, _ flag: String) throws -> UInt64 {
        let digits = text.filter { $0 != "_" && $0 != "," }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = UInt64(digits) else {
            throw ValidationError("\(flag): \(text) is not a whole number")
        }
        return value
    }

    /// `90`, `90s`, `15m`, `2h`, `1d`.
    static func duration(_ text: String, _ flag: String) throws -> Duration {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400]
        var number = Substring(text)
        var multiplier: Int64 = 1
        if let last = text.last, let unit = units[last] {
            multiplier = unit
            number = text.dropLast()
        }
        guard let value = Int64(number), value > 0, value <= 10_000_000 else {
            throw ValidationError("\(flag): \(text) is not a duration like 90s, 15m, 2h or 1d")
        }
        return .seconds(value * multiplier)
    }

    static func time(_ text: String, _ flag: String) throws -> LedgerTime {
        guard let time = LedgerTime(iso8601: text) else {
            throw ValidationError("\(flag): \(text) is not an ISO 8601 time like 2026-12-31 or 2026-12-31T23:59:59Z")
        }
        return time
    }

    /// A reserve's or a charge's amount: AMOUNT, or `--item FEATURE=QTY`s priced by the catalog.
    static func spend(_ amount: String?, _ items: [String]) throws -> ReserveRequest.Amount {
        if let amount { return .tokens(try Self.amount(amount, "AMOUNT")) }
        return .items(try items.map(item))
    }

    /// `--item FEATURE=QTY`.
    static func item(_ text: String) throws -> PricedItem {
        let (feature, quantity) = try featureNumber(text, "--item", "FEATURE=QUANTITY, e.g. transcription=37")
        return PricedItem(feature: feature, quantity: quantity)
    }

    /// `--quota FEATURE=LIMIT`: units of a catalog feature the plan grants per period.
    static func quota(_ text: String) throws -> PlanQuota {
        let (feature, limit) = try featureNumber(text, "--quota", "FEATURE=LIMIT, e.g. cover_image=30")
        return PlanQuota(feature: feature, limit: limit)
    }

    /// `FEATURE=NUMBER`, the form of `--item` and `--quota`.
    private static func featureNumber(_ text: String, _ flag: String, _ expected: String) throws -> (String, UInt64) {
        guard let equals = text.lastIndex(of: "="), let number = UInt64(text[text.index(after: equals)...]),
            equals != text.startIndex
        else { throw ValidationError("\(flag) \(text): expected \(expected)") }
        return (String(text[..<equals]), number)
    }

    /// `--threshold-at TOKENS` or `--threshold-at PERCENT%`.
    static func threshold(_ text: String) throws -> BalanceThreshold {
        if text.hasSuffix("%") {
            guard let percent = UInt32(text.dropLast()), (1...100).contains(percent) else {
                throw ValidationError("--threshold-at \(text): a percentage is 1% to 100%")
            }
            return .percent(percent)
        }
        return .tokens(try amount(text, "--threshold-at"))
    }

    /// `on` or `off`.
    static func onOff(_ text: String, _ flag: String) throws -> Bool {
        switch text {
        case "on": return true
        case "off": return false
        default: throw ValidationError("\(flag) must be on or off")
        }
    }

    static func period(_ text: String, _ flag: String) throws -> PeriodUnit {
        guard let unit = PeriodUnit(rawValue: text) else { throw ValidationError("\(flag) must be day, week or month") }
        return unit
    }

    static func grantKind(_ text: String, _ flag: String, allowed: [GrantKind] = GrantKind.allCases) throws -> GrantKind {
        guard let kind = GrantKind(rawValue: text), allowed.contains(kind) else {
            throw ValidationError("\(flag) must be one of \(allowed.map(\.rawValue).joined(separator: ", "))")
        }
        return kind
    }

    static func identifier<ID: LedgerIdentifier>(_ text: String, _ what: String) throws -> ID {
        guard IdentifierRule.isValid(text) else {
            throw ValidationError("\(what) \(text): ids are 1 to 128 characters of A-Z a-z 0-9 . _ : -")
        }
        return ID(text)
    }

    /// `g3` or `3`.
    static func grantID(_ text: String) throws -> GrantID {
        let digits = text.hasPrefix("g") ? String(text.dropFirst()) : text
        guard let value = UInt64(digits), value > 0 else { throw ValidationError("GRANT \(text): expected a grant id like g3") }
        return GrantID(value)
    }

    static func requestID(_ text: String?) throws -> RequestID {
        guard let text else { return RequestID(UUIDText.fresh()) }
        return try identifier(text, "--request-id")
    }
}

import Foundation

enum UUIDText {
    static func fresh() -> String { UUID().uuidString.lowercased() }
}

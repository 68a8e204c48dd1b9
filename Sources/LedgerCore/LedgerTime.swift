/// Ledger time: milliseconds since 1970-01-01T00:00:00Z (UTC), carried by every command.
///
/// The state machine never reads a clock. The server stamps each command with its own clock (never
/// moving backwards) and the write-ahead log records that stamp, so replay sees the same times.
public struct LedgerTime: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch, UTC.
    public var millisecondsSinceEpoch: Int64

    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }

    /// The Unix epoch, the earliest time a fresh ledger has.
    public static let epoch = LedgerTime(millisecondsSinceEpoch: 0)

    public static func < (lhs: LedgerTime, rhs: LedgerTime) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }

    /// `self + duration`, saturating at the representable range.
    public func adding(milliseconds: Int64) -> LedgerTime {
        let (sum, overflow) = millisecondsSinceEpoch.addingReportingOverflow(milliseconds)
        if overflow { return LedgerTime(millisecondsSinceEpoch: milliseconds > 0 ? .max : .min) }
        return LedgerTime(millisecondsSinceEpoch: sum)
    }

    /// `self + duration`, saturating; the duration is truncated to whole milliseconds.
    public func adding(_ duration: Duration) -> LedgerTime {
        adding(milliseconds: duration.wholeMilliseconds)
    }

    /// ISO 8601 in UTC with millisecond precision, e.g. `2026-04-15T00:00:00.000Z`.
    public var description: String { iso8601 }

    /// ISO 8601 in UTC with millisecond precision, e.g. `2026-04-15T00:00:00.000Z`.
    public var iso8601: String {
        let civil = CivilDateTime(self)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(civil.year, 4))-\(pad(civil.month, 2))-\(pad(civil.day, 2))T"
            + "\(pad(civil.hour, 2)):\(pad(civil.minute, 2)):\(pad(civil.second, 2))."
            + "\(pad(civil.millisecond, 3))Z"
    }

    /// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ`, optionally with `.fff` milliseconds, or a
    /// `+HH:MM`/`-HH:MM` offset instead of `Z`. Returns nil for anything else.
    public init?(iso8601 text: String) {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ width: Int) -> Int64? {
            guard index + width <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[index..<(index + width)] {
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int64(byte - 48)
            }
            index += width
            return value
        }
        func expect(_ ascii: Character) -> Bool {
            guard index < bytes.count, bytes[index] == ascii.asciiValue else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"),
            let day = number(2), (1...12).contains(month),
            (1...CivilDateTime.daysInMonth(year: year, month: month)).contains(day)
        else { return nil }
        var millis: Int64 = 0
        var offsetMinutes: Int64 = 0
        if index < bytes.count {
            guard expect("T"), let hour = number(2), expect(":"), let minute = number(2), expect(":"),
                let second = number(2), hour < 24, minute < 60, second < 60
            else { return nil }
            millis = ((hour * 60 + minute) * 60 + second) * 1000
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard let fraction = number(3) else { return nil }
                millis += fraction
            }
            if expect("Z") {
                offsetMinutes = 0
            } else if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                let sign: Int64 = bytes[index] == UInt8(ascii: "+") ? 1 : -1
                index += 1
                guard let offsetHours = number(2), expect(":"), let offsetMins = number(2), offsetHours < 24,
                    offsetMins < 60
                else { return nil }
                offsetMinutes = sign * (offsetHours * 60 + offsetMins)
            } else {
                return nil
            }
            guard index == bytes.count else { return nil }
        }
        let days = CivilDateTime.daysFromCivil(year: year, month: month, day: day)
        self.init(millisecondsSinceEpoch: days * CivilDateTime.millisecondsPerDay + millis - offsetMinutes * 60_000)
    }
}

extension Duration {
    /// The duration in whole milliseconds, truncated toward zero.
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (fromSeconds, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds > 0 ? .max : .min }
        return fromSeconds.addingReportingOverflow(attoseconds / 1_000_000_000_000_000).partialValue
    }
}

/// A UTC calendar date and time of day, derived from a ``LedgerTime`` with the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`). Needs no time-zone database.
package struct CivilDateTime: Equatable, Sendable {
    package var year: Int64
    package var month: Int64
    package var day: Int64
    /// Milliseconds since 00:00 of `day`.
    package var millisecondOfDay: Int64

    package static let millisecondsPerDay: Int64 = 86_400_000

    package var hour: Int64 { millisecondOfDay / 3_600_000 }
    package var minute: Int64 { millisecondOfDay / 60_000 % 60 }
    package var second: Int64 { millisecondOfDay / 1000 % 60 }
    package var millisecond: Int64 { millisecondOfDay % 1000 }

    package init(year: Int64, month: Int64, day: Int64, millisecondOfDay: Int64) {
        self.year = year
        self.month = month
        self.day = day
        self.millisecondOfDay = millisecondOfDay
    }

    package init(_ time: LedgerTime) {
        let millis = time.millisecondsSinceEpoch
        let days = millis >= 0 ? millis / Self.millisecondsPerDay : (millis - Self.millisecondsPerDay + 1) / Self.millisecondsPerDay
        millisecondOfDay = millis - days * Self.millisecondsPerDay
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }

    /// The instant this civil date and time denotes.
    package var time: LedgerTime {
        LedgerTime(
            millisecondsSinceEpoch: Self.daysFromCivil(year: year, month: month, day: day) * Self.millisecondsPerDay
                + millisecondOfDay)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
    package static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    package static func daysInMonth(year: Int64, month: Int64) -> Int64 {
        switch month {
        case 2:
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
            return leap ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// This date-time moved by `months` calendar months; the day is clamped to the target month's
    /// length (an anchor on the 31st falls on the 30th in April and the 28th or 29th in February).
    package func addingMonths(_ months: Int64, anchorDay: Int64) -> CivilDateTime {
        let total = year * 12 + (month - 1) + months
        let newYear = total >= 0 ? total / 12 : (total - 11) / 12
        let newMonth = total - newYear * 12 + 1
        let newDay = min(anchorDay, Self.daysInMonth(year: newYear, month: newMonth))
        return CivilDateTime(year: newYear, month: newMonth, day: newDay, millisecondOfDay: millisecondOfDay)
    }
}

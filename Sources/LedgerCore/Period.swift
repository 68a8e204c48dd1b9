/// The length of a budget or plan period.
public enum PeriodUnit: String, Sendable, Codable, CaseIterable {
    case day, week, month
}

/// A recurring period in UTC: consecutive intervals of one ``PeriodUnit`` whose boundaries fall on
/// an anchor instant and every whole unit before and after it.
///
/// Days and weeks are fixed lengths (86,400,000 and 604,800,000 ms) counted from the anchor. Months
/// are calendar months: every boundary has the anchor's day of month and time of day, with the day
/// clamped to short months (an anchor on Jan 31 gives Feb 28/29, Mar 31, Apr 30, ...).
///
/// The default anchors give the natural UTC boundaries: midnight for days, Monday midnight for
/// weeks, the first of the month at midnight for months.
public struct PeriodRule: Hashable, Sendable, Codable, CustomStringConvertible {
    public var unit: PeriodUnit
    public var anchor: LedgerTime

    public init(unit: PeriodUnit, anchor: LedgerTime? = nil) {
        self.unit = unit
        self.anchor = anchor ?? Self.defaultAnchor(for: unit)
    }

    /// Midnight UTC for days and months (1970-01-01), Monday midnight UTC for weeks (1970-01-05).
    public static func defaultAnchor(for unit: PeriodUnit) -> LedgerTime {
        switch unit {
        case .day, .month: return .epoch
        case .week: return LedgerTime(millisecondsSinceEpoch: 4 * CivilDateTime.millisecondsPerDay)
        }
    }

    public var description: String { "\(unit.rawValue) anchored at \(anchor)" }

    /// The period that contains `time`: `start <= time < end`.
    public func period(containing time: LedgerTime) -> (start: LedgerTime, end: LedgerTime) {
        switch unit {
        case .day, .week:
            let length = unit == .day ? CivilDateTime.millisecondsPerDay : 7 * CivilDateTime.millisecondsPerDay
            let offset = time.millisecondsSinceEpoch - anchor.millisecondsSinceEpoch
            let index = offset >= 0 ? offset / length : (offset - length + 1) / length
            let start = anchor.millisecondsSinceEpoch + index * length
            return (LedgerTime(millisecondsSinceEpoch: start), LedgerTime(millisecondsSinceEpoch: start + length))
        case .month:
            let anchorCivil = CivilDateTime(anchor)
            let timeCivil = CivilDateTime(time)
            var index = (timeCivil.year * 12 + timeCivil.month) - (anchorCivil.year * 12 + anchorCivil.month)
            if boundary(index, anchorCivil) > time { index -= 1 }
            return (boundary(index, anchorCivil), boundary(index + 1, anchorCivil))
        }
    }

    private func boundary(_ index: Int64, _ anchorCivil: CivilDateTime) -> LedgerTime {
        anchorCivil.addingMonths(index, anchorDay: anchorCivil.day).time
    }
}

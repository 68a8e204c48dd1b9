import LedgerCore
import Testing

@Suite struct TimeTests {
    @Test(arguments: [
        ("1970-01-01T00:00:00.000Z", Int64(0)),
        ("2000-02-29T12:34:56.789Z", Int64(951_827_696_789)),
        ("2026-11-22T18:56:22.000Z", Int64(1_795_373_782_000)),
        ("1969-12-31T23:59:59.999Z", Int64(-1)),
    ])
    func iso8601RoundTrips(text: String, millis: Int64) {
        let parsed = LedgerTime(iso8601: text)
        #expect(parsed?.millisecondsSinceEpoch == millis)
        #expect(LedgerTime(millisecondsSinceEpoch: millis).iso8601 == text)
    }

    @Test func iso8601AcceptsDatesAndOffsets() {
        #expect(LedgerTime(iso8601: "2026-04-15") == time("2026-04-15T00:00:00Z"))
        #expect(LedgerTime(iso8601: "2026-04-15T02:00:00+02:00") == time("2026-04-15T00:00:00Z"))
        #expect(LedgerTime(iso8601: "2026-04-14T19:30:00-04:30") == time("2026-04-15T00:00:00Z"))
    }

    @Test(arguments: ["", "2026-13-01", "2026-02-30", "2026-04-15T24:00:00Z", "2026-04-15T00:00:00", "2026-04-15T00:00:00Zjunk", "20260415", "2026-04-15T00:00Z"])
    func iso8601RejectsMalformed(text: String) {
        #expect(LedgerTime(iso8601: text) == nil)
    }

    @Test func civilConversionAgreesAcrossFourCenturies() {
        // Every day from 1900 to 2300: date -> days -> date is the identity and days are consecutive.
        var day = LedgerTime(iso8601: "1900-01-01")!.millisecondsSinceEpoch / 86_400_000
        for year in Int64(1900)...2300 {
            for month in Int64(1)...12 {
                let length: Int64 = [31, (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][Int(month - 1)]
                for dayOfMonth in Int64(1)...length {
                    let text = "\(year)-\(month < 10 ? "0" : "")\(month)-\(dayOfMonth < 10 ? "0" : "")\(dayOfMonth)"
                    let parsed = LedgerTime(iso8601: text)!
                    #expect(parsed.millisecondsSinceEpoch == day * 86_400_000)
                    if parsed.iso8601 != text + "T00:00:00.000Z" { Issue.record("\(text) formats as \(parsed.iso8601)") }
                    day += 1
                }
            }
        }
    }
}

@Suite struct PeriodTests {
    @Test(arguments: [
        // unit, anchor (nil: default), instant, expected start, expected end
        (PeriodUnit.day, nil as String?, "2026-07-01T13:00:00Z", "2026-07-01T00:00:00Z", "2026-07-02T00:00:00Z"),
        (.day, "2026-01-01T06:00:00Z", "2026-07-01T05:59:59Z", "2026-06-30T06:00:00Z", "2026-07-01T06:00:00Z"),
        (.week, nil, "2026-07-01T13:00:00Z", "2026-06-29T00:00:00Z", "2026-07-06T00:00:00Z"),  // Monday to Monday
        (.week, nil, "2026-06-29T00:00:00Z", "2026-06-29T00:00:00Z", "2026-07-06T00:00:00Z"),
        (.week, "2026-04-08T00:00:00Z", "2026-04-14T23:00:00Z", "2026-04-08T00:00:00Z", "2026-04-15T00:00:00Z"),
        (.month, nil, "2026-07-14T10:00:00Z", "2026-07-01T00:00:00Z", "2026-08-01T00:00:00Z"),
        (.month, nil, "2026-12-31T23:59:59Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        (.month, "2026-01-31T00:00:00Z", "2026-02-28T12:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"),
        (.month, "2026-01-31T00:00:00Z", "2026-02-27T12:00:00Z", "2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"),
        (.month, "2026-01-31T00:00:00Z", "2028-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z"),
        (.month, "2026-01-15T09:00:00Z", "2026-04-15T08:59:59Z", "2026-03-15T09:00:00Z", "2026-04-15T09:00:00Z"),
        (.month, "2030-05-15T00:00:00Z", "2026-04-20T00:00:00Z", "2026-04-15T00:00:00Z", "2026-05-15T00:00:00Z"),  // anchor in the future
        (.day, "2030-01-01T06:00:00Z", "2026-07-01T05:00:00Z", "2026-06-30T06:00:00Z", "2026-07-01T06:00:00Z"),
    ])
    func periodContaining(unit: PeriodUnit, anchor: String?, instant: String, start: String, end: String) {
        let rule = PeriodRule(unit: unit, anchor: anchor.map(time))
        let period = rule.period(containing: time(instant))
        #expect(period.start == time(start))
        #expect(period.end == time(end))
    }

    @Test func consecutivePeriodsTileTheTimeline() {
        for unit in PeriodUnit.allCases {
            let rule = PeriodRule(unit: unit, anchor: time("2024-01-31T10:00:00Z"))
            var period = rule.period(containing: time("2023-11-02T00:00:00Z"))
            for _ in 0..<200 {
                #expect(period.start < period.end)
                let next = rule.period(containing: period.end)
                #expect(next.start == period.end)
                #expect(rule.period(containing: period.end.adding(milliseconds: -1)).start == period.start)
                period = next
            }
        }
    }
}

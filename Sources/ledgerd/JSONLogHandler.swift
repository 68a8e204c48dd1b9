import Foundation
import LedgerCore
import Logging

/// `--log-format json`: one JSON object a line on stderr, with stable keys: `time` (ISO 8601, UTC,
/// milliseconds), `level`, `label`, `message`, then the record's metadata (the logger's merged with
/// the call's, as the text format prints them) under `metadata`, and `source`. Written with one
/// write(2) a line, so lines from several threads never interleave.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider? = nil

    init(label: String, logLevel: Logger.Level) {
        self.label = label
        self.logLevel = logLevel
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String,
        function: String, line: UInt
    ) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit { merged.merge(explicit) { _, new in new } }
        let record = Self.record(
            time: Date(), level: level, label: label, message: message.description, metadata: merged, source: source)
        let bytes = Array((record.text + "\n").utf8)
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }

    static func record(
        time: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, source: String
    ) -> OrderedJSON {
        let milliseconds = Int64((time.timeIntervalSince1970 * 1000).rounded(.down))
        return .object([
            ("time", .string(LedgerTime(millisecondsSinceEpoch: milliseconds).iso8601)), ("level", .string(level.rawValue)),
            ("label", .string(label)), ("message", .string(message)),
            ("metadata", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, json($0.value)) })),
            ("source", .string(source)),
        ])
    }

    static func json(_ value: Logger.Metadata.Value) -> OrderedJSON {
        switch value {
        case .string(let text): return .string(text)
        case .stringConvertible(let convertible): return .string(convertible.description)
        case .array(let values): return .array(values.map(json))
        case .dictionary(let fields): return .object(fields.sorted { $0.key < $1.key }.map { ($0.key, json($0.value)) })
        }
    }
}

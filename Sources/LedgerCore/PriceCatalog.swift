/// The price of one metered feature: `base + ceil(quantity * rate / per)` tokens.
///
/// `base` is charged once per item; `rate` tokens are charged for every `per` units of quantity,
/// rounded up to whole tokens. Transcription at 8 tokens a minute is `rate 8, per 1, unit minute`;
/// the same price in seconds is `rate 8, per 60, unit second`.
public struct FeaturePrice: Hashable, Sendable, Codable {
    public var name: String
    public var unit: String
    public var base: Tokens
    public var rate: Tokens
    public var per: UInt64
    public var description: String

    public init(name: String, unit: String, base: Tokens = 0, rate: Tokens = 0, per: UInt64 = 1, description: String = "") {
        self.name = name
        self.unit = unit
        self.base = base
        self.rate = rate
        self.per = per
        self.description = description
    }

    /// The cost of `quantity` units, rounded up to whole tokens; `limit_exceeded` when it would be
    /// above ``Limits/amountMax``.
    public func cost(quantity: UInt64) throws(LedgerError) -> Tokens {
        let product = quantity.multipliedFullWidth(by: rate)
        guard product.high < per else {
            throw LedgerError.limit("amount_max", Limits.amountMax, "\(quantity) \(unit) of \(name) costs more than \(Limits.amountMax) tokens")
        }
        let (quotient, remainder) = per.dividingFullWidth(product)
        let (perUnits, overflow1) = quotient.addingReportingOverflow(remainder > 0 ? 1 : 0)
        let (total, overflow2) = perUnits.addingReportingOverflow(base)
        guard !overflow1, !overflow2, total <= Limits.amountMax else {
            throw LedgerError.limit("amount_max", Limits.amountMax, "\(quantity) \(unit) of \(name) costs more than \(Limits.amountMax) tokens")
        }
        return total
    }
}

/// A versioned rate card. Installed into the ledger by a command, so that replay prices every
/// priced reserve exactly as it was priced the first time.
///
/// The JSON form (docs/semantics.md, "Price catalog"):
///
///     { "version": "demo-1",
///       "features": {
///         "transcription": { "unit": "minute", "rate": 8, "per": 1, "description": "..." },
///         "ai_question":   { "unit": "character", "base": 1, "rate": 1, "per": 200 } } }
public struct PriceCatalog: Hashable, Sendable, Codable {
    public var version: String
    public var features: [String: FeaturePrice]

    public init(version: String, features: [FeaturePrice]) throws(LedgerError) {
        try IdentifierRule.check(version, field: "catalog version")
        guard features.count <= Limits.catalogFeaturesMax else {
            throw LedgerError.limit("catalog_features_max", UInt64(Limits.catalogFeaturesMax), "a catalog has at most \(Limits.catalogFeaturesMax) features")
        }
        var byName: [String: FeaturePrice] = [:]
        for feature in features {
            try IdentifierRule.check(feature.name, field: "feature name")
            guard byName[feature.name] == nil else { throw LedgerError(.invalidArgument, "feature \(feature.name) appears twice") }
            guard feature.per >= 1, feature.per <= Limits.itemQuantityMax else {
                throw LedgerError(.invalidArgument, "feature \(feature.name): per must be 1 to \(Limits.itemQuantityMax)")
            }
            guard feature.base <= Limits.amountMax, feature.rate <= Limits.amountMax else {
                throw LedgerError(.invalidArgument, "feature \(feature.name): base and rate must be at most \(Limits.amountMax)")
            }
            guard feature.base > 0 || feature.rate > 0 else {
                throw LedgerError(.invalidArgument, "feature \(feature.name) has neither a base nor a rate")
            }
            guard feature.unit.utf8.count <= Limits.noteLengthMax, feature.description.utf8.count <= Limits.noteLengthMax else {
                throw LedgerError(.invalidArgument, "feature \(feature.name): unit and description are at most \(Limits.noteLengthMax) bytes")
            }
            byName[feature.name] = feature
        }
        self.version = version
        self.features = byName
    }

    /// Parses the JSON form; every problem is `invalid_argument` with the reason and where.
    public init(json: [UInt8]) throws(LedgerError) {
        let document: JSONValue
        do {
            document = try JSONValue.parse(json)
        } catch {
            throw LedgerError(.invalidArgument, "price catalog is not valid JSON: \(error)")
        }
        guard case .object(let root) = document else { throw LedgerError(.invalidArgument, "price catalog must be a JSON object") }
        for key in root.keys where key != "version" && key != "features" && key != "description" {
            throw LedgerError(.invalidArgument, "price catalog has an unknown field \"\(key)\"")
        }
        guard case .string(let version)? = root["version"] else {
            throw LedgerError(.invalidArgument, "price catalog needs a string \"version\"")
        }
        guard case .object(let featureObjects)? = root["features"] else {
            throw LedgerError(.invalidArgument, "price catalog needs an object \"features\"")
        }
        var features: [FeaturePrice] = []
        for name in featureObjects.keys.sorted() {
            features.append(try Self.feature(name: name, featureObjects[name]!))
        }
        try self.init(version: version, features: features)
    }

    private static func feature(name: String, _ value: JSONValue) throws(LedgerError) -> FeaturePrice {
        guard case .object(let fields) = value else { throw LedgerError(.invalidArgument, "feature \(name) must be an object") }
        var feature = FeaturePrice(name: name, unit: "")
        for (key, field) in fields.sorted(by: { $0.key < $1.key }) {
            switch (key, field) {
            case ("unit", .string(let text)): feature.unit = text
            case ("description", .string(let text)): feature.description = text
            case ("base", .integer(let number)): feature.base = number
            case ("rate", .integer(let number)): feature.rate = number
            case ("per", .integer(let number)): feature.per = number
            case ("unit", _), ("description", _): throw LedgerError(.invalidArgument, "feature \(name): \(key) must be a string")
            case ("base", _), ("rate", _), ("per", _): throw LedgerError(.invalidArgument, "feature \(name): \(key) must be a whole number")
            default: throw LedgerError(.invalidArgument, "feature \(name) has an unknown field \"\(key)\"")
            }
        }
        guard !feature.unit.isEmpty else { throw LedgerError(.invalidArgument, "feature \(name) needs a \"unit\"") }
        return feature
    }

    private enum CodingKeys: String, CodingKey { case version, features }

    /// Encoded as the version and the features sorted by name: a stable form that needs no
    /// string-keyed dictionary.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(version, forKey: .version)
        try container.encode(sortedFeatures, forKey: .features)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            version: try container.decode(String.self, forKey: .version),
            features: try container.decode([FeaturePrice].self, forKey: .features))
    }

    /// Features sorted by name.
    public var sortedFeatures: [FeaturePrice] { features.values.sorted { $0.name < $1.name } }

    /// The cost of each item, in order; `invalid_argument` for an unknown feature or a zero
    /// quantity, `limit_exceeded` for too many items or a cost above the limits.
    public func price(_ items: [PricedItem]) throws(LedgerError) -> [Tokens] {
        guard !items.isEmpty else { throw LedgerError(.invalidArgument, "at least one item is needed") }
        guard items.count <= Limits.estimateItemsMax else {
            throw LedgerError.limit("estimate_items_max", UInt64(Limits.estimateItemsMax), "at most \(Limits.estimateItemsMax) items per call")
        }
        var costs: [Tokens] = []
        costs.reserveCapacity(items.count)
        for item in items {
            guard let feature = features[item.feature] else {
                throw LedgerError(.invalidArgument, "feature \(item.feature) is not in catalog \(version)")
            }
            guard item.quantity >= 1, item.quantity <= Limits.itemQuantityMax else {
                throw LedgerError(.invalidArgument, "quantity of \(item.feature) must be 1 to \(Limits.itemQuantityMax)")
            }
            costs.append(try feature.cost(quantity: item.quantity))
        }
        return costs
    }
}

extension PriceCatalog {
    /// The demo catalog that `ledgerd` installs when no `--catalog` is given. docs/semantics.md
    /// shows the same document.
    public static let demoJSON = """
        {
          "version": "demo-2026-11",
          "description": "Demo rate card: transcription, reports, AI questions, classification, images.",
          "features": {
            "transcription":   { "unit": "minute", "rate": 8, "per": 1, "description": "Transcription of interview audio" },
            "vocal_recording": { "unit": "minute", "rate": 8, "per": 1, "description": "Recorded vocal answer, saved" },
            "report.qa":       { "unit": "report", "rate": 40, "per": 1, "description": "Q&A report" },
            "report.general":  { "unit": "report", "rate": 50, "per": 1, "description": "General report" },
            "report.persona":  { "unit": "report", "rate": 60, "per": 1, "description": "Persona report" },
            "report.jtbd":     { "unit": "report", "rate": 60, "per": 1, "description": "Jobs-to-be-done report" },
            "report.custom":   { "unit": "report", "rate": 80, "per": 1, "description": "Custom report" },
            "ai_question":     { "unit": "character", "base": 2, "rate": 1, "per": 200, "description": "AI follow-up question: 2 tokens plus 1 per 200 characters generated" },
            "classification":  { "unit": "response_pass", "rate": 1, "per": 1, "description": "One response classified in one pass (responses x passes)" },
            "cover_image":     { "unit": "image", "rate": 25, "per": 1, "description": "AI cover image" }
          }
        }
        """

    /// The parsed ``demoJSON``.
    public static var demo: PriceCatalog {
        do {
            return try PriceCatalog(json: Array(demoJSON.utf8))
        } catch {
            preconditionFailure("the embedded demo catalog is invalid: \(error)")
        }
    }
}

extension PriceCatalog {
    /// The JSON form, features sorted by name: `PriceCatalog(json:)` reads it back to an equal
    /// catalog.
    public var json: String {
        var text = "{\"version\":\(JSONValue.quoted(version)),\"features\":{"
        for (index, feature) in sortedFeatures.enumerated() {
            if index > 0 { text += "," }
            text += "\(JSONValue.quoted(feature.name)):{\"unit\":\(JSONValue.quoted(feature.unit)),\"base\":\(feature.base),"
            text += "\"rate\":\(feature.rate),\"per\":\(feature.per),\"description\":\(JSONValue.quoted(feature.description))}"
        }
        return text + "}}"
    }
}

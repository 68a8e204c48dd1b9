import Foundation
import SwiftProtobuf

extension SwiftProtobuf.Message {
    /// Whether this message or any message inside it carries fields this schema does not know.
    /// The server refuses such requests: a field it would silently ignore may be one the client
    /// believes changes the call's meaning (a newer client's option, a typo'd field number).
    public var containsUnknownFields: Bool {
        var detector = UnknownFieldDetector()
        try? traverse(visitor: &detector)
        return detector.found
    }
}

/// Walks a message and every message inside it, noting unknown fields. Scalars are ignored.
struct UnknownFieldDetector: Visitor {
    var found = false

    mutating func visitUnknown(bytes: Data) throws { if !bytes.isEmpty { found = true } }
    mutating func visitSingularMessageField<M: Message>(value: M, fieldNumber: Int) throws {
        try value.traverse(visitor: &self)
    }
    mutating func visitRepeatedMessageField<M: Message>(value: [M], fieldNumber: Int) throws {
        for element in value { try element.traverse(visitor: &self) }
    }
    mutating func visitSingularGroupField<G: Message>(value: G, fieldNumber: Int) throws {
        try value.traverse(visitor: &self)
    }
    mutating func visitSingularDoubleField(value: Double, fieldNumber: Int) throws {}
    mutating func visitSingularInt64Field(value: Int64, fieldNumber: Int) throws {}
    mutating func visitSingularUInt64Field(value: UInt64, fieldNumber: Int) throws {}
    mutating func visitSingularBoolField(value: Bool, fieldNumber: Int) throws {}
    mutating func visitSingularStringField(value: String, fieldNumber: Int) throws {}
    mutating func visitSingularBytesField(value: Data, fieldNumber: Int) throws {}
    mutating func visitSingularEnumField<E: Enum>(value: E, fieldNumber: Int) throws {}
    mutating func visitMapField<KeyType, ValueType: MapValueType>(
        fieldType: _ProtobufMap<KeyType, ValueType>.Type, value: _ProtobufMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws {}
    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type, value: _ProtobufEnumMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws where ValueType.RawValue == Int {}
    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type,
        value: _ProtobufMessageMap<KeyType, ValueType>.BaseType, fieldNumber: Int
    ) throws {}
    mutating func visitExtensionFields(fields: ExtensionFieldValueSet, start: Int, end: Int) throws {}
    mutating func visitExtensionFieldsAsMessageSet(fields: ExtensionFieldValueSet, start: Int, end: Int) throws {}
}

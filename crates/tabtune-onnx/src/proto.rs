//! The part of ONNX's protobuf schema (`onnx/onnx.proto`, IR version 8) that the exporter
//! writes, and an encoder of protobuf's wire format for it.
//!
//! Only writing is needed (onnxruntime and `onnx.checker` read the files in the tests), so the
//! messages are plain structs with an `encode` each; field numbers are onnx.proto's. Numbers
//! are written packed (proto2 parsers accept packed repeated scalars), tensors as `raw_data`
//! (little-endian).

/// ONNX IR version of the files written (ONNX 1.12: opset 17, ai.onnx.ml 3).
pub(crate) const IR_VERSION: i64 = 8;

/// Element types of tensors (`TensorProto.DataType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataType {
    Float = 1,
    Int64 = 7,
    String = 8,
    Bool = 9,
    Double = 11,
}

/// A tensor's values.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TensorData {
    Float(Vec<f32>),
    Double(Vec<f64>),
    Int64(Vec<i64>),
}

impl TensorData {
    fn data_type(&self) -> DataType {
        match self {
            Self::Float(_) => DataType::Float,
            Self::Double(_) => DataType::Double,
            Self::Int64(_) => DataType::Int64,
        }
    }
}

/// `TensorProto`: an initializer or a tensor attribute.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tensor {
    pub name: String,
    pub dims: Vec<i64>,
    pub data: TensorData,
}

/// An attribute value (`AttributeProto`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Attr {
    Int(i64),
    Float(f32),
    String(String),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Strings(Vec<String>),
    Tensor(Tensor),
}

/// `NodeProto`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<(String, Attr)>,
}

/// One dimension of a shape.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A named free size (the batch).
    Named(String),
}

/// `ValueInfoProto` of a tensor: a graph input or output.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ValueInfo {
    pub name: String,
    pub elem_type: DataType,
    pub shape: Vec<Dim>,
    pub doc: String,
}

/// `GraphProto`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Graph {
    pub name: String,
    pub doc: String,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Tensor>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

/// `ModelProto`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Model {
    /// `(domain, version)`; the default domain is `""`.
    pub opsets: Vec<(String, i64)>,
    pub producer_name: String,
    pub producer_version: String,
    pub domain: String,
    /// `model_version`.
    pub version: i64,
    pub doc: String,
    pub graph: Graph,
    pub metadata: Vec<(String, String)>,
}

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED32: u8 = 5;
const LENGTH_DELIMITED: u8 = 2;

/// A buffer of encoded fields.
#[derive(Default)]
struct Out(Vec<u8>);

impl Out {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }

    /// An `int32`/`int64`/enum field (negative values take ten bytes, as protobuf does).
    fn int(&mut self, field: u32, v: i64) {
        self.key(field, VARINT);
        self.varint(v as u64);
    }

    fn bytes(&mut self, field: u32, v: &[u8]) {
        self.key(field, LENGTH_DELIMITED);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
    }

    fn string(&mut self, field: u32, v: &str) {
        self.bytes(field, v.as_bytes());
    }

    /// A string field, left out when empty (proto2 optional).
    fn string_opt(&mut self, field: u32, v: &str) {
        if !v.is_empty() {
            self.string(field, v);
        }
    }

    fn float(&mut self, field: u32, v: f32) {
        self.key(field, FIXED32);
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn packed_ints(&mut self, field: u32, values: &[i64]) {
        let mut inner = Out::default();
        for &v in values {
            inner.varint(v as u64);
        }
        self.bytes(field, &inner.0);
    }

    fn packed_floats(&mut self, field: u32, values: &[f32]) {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.bytes(field, &bytes);
    }

    fn message(&mut self, field: u32, encode: impl FnOnce(&mut Out)) {
        let mut inner = Out::default();
        encode(&mut inner);
        self.bytes(field, &inner.0);
    }
}

impl Tensor {
    fn encode(&self, out: &mut Out) {
        // TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9.
        if !self.dims.is_empty() {
            out.packed_ints(1, &self.dims);
        }
        out.int(2, self.data.data_type() as i64);
        out.string_opt(8, &self.name);
        match &self.data {
            TensorData::Float(values) => {
                let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                out.bytes(9, &raw);
            }
            TensorData::Double(values) => {
                let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                out.bytes(9, &raw);
            }
            TensorData::Int64(values) => {
                let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                out.bytes(9, &raw);
            }
        }
    }
}

impl Attr {
    /// `AttributeProto.AttributeType`.
    fn kind(&self) -> i64 {
        match self {
            Self::Float(_) => 1,
            Self::Int(_) => 2,
            Self::String(_) => 3,
            Self::Tensor(_) => 4,
            Self::Floats(_) => 6,
            Self::Ints(_) => 7,
            Self::Strings(_) => 8,
        }
    }

    fn encode(&self, name: &str, out: &mut Out) {
        // AttributeProto: name = 1, f = 2, i = 3, s = 4, t = 5, floats = 7, ints = 8,
        // strings = 9, type = 20.
        out.string(1, name);
        match self {
            Self::Float(v) => out.float(2, *v),
            Self::Int(v) => out.int(3, *v),
            Self::String(v) => out.string(4, v),
            Self::Tensor(t) => out.message(5, |o| t.encode(o)),
            Self::Floats(v) => out.packed_floats(7, v),
            Self::Ints(v) => out.packed_ints(8, v),
            Self::Strings(v) => {
                for s in v {
                    out.string(9, s);
                }
            }
        }
        out.int(20, self.kind());
    }
}

impl Node {
    fn encode(&self, out: &mut Out) {
        // NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5, domain = 7.
        for i in &self.inputs {
            out.string(1, i);
        }
        for o in &self.outputs {
            out.string(2, o);
        }
        out.string_opt(3, &self.name);
        out.string(4, &self.op_type);
        for (name, attr) in &self.attributes {
            out.message(5, |o| attr.encode(name, o));
        }
        out.string_opt(7, &self.domain);
    }
}

impl ValueInfo {
    fn encode(&self, out: &mut Out) {
        // ValueInfoProto: name = 1, type = 2, doc_string = 3. TypeProto: tensor_type = 1.
        // TypeProto.Tensor: elem_type = 1, shape = 2. TensorShapeProto: dim = 1.
        // Dimension: dim_value = 1, dim_param = 2.
        out.string(1, &self.name);
        out.message(2, |ty| {
            ty.message(1, |tensor| {
                tensor.int(1, self.elem_type as i64);
                tensor.message(2, |shape| {
                    for d in &self.shape {
                        shape.message(1, |dim| match d {
                            Dim::Fixed(v) => dim.int(1, *v),
                            Dim::Named(n) => dim.string(2, n),
                        });
                    }
                });
            });
        });
        out.string_opt(3, &self.doc);
    }
}

impl Graph {
    fn encode(&self, out: &mut Out) {
        // GraphProto: node = 1, name = 2, initializer = 5, doc_string = 10, input = 11,
        // output = 12.
        for n in &self.nodes {
            out.message(1, |o| n.encode(o));
        }
        out.string(2, &self.name);
        for t in &self.initializers {
            out.message(5, |o| t.encode(o));
        }
        out.string_opt(10, &self.doc);
        for v in &self.inputs {
            out.message(11, |o| v.encode(o));
        }
        for v in &self.outputs {
            out.message(12, |o| v.encode(o));
        }
    }
}

impl Model {
    /// The serialized `ModelProto`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        // ModelProto: ir_version = 1, producer_name = 2, producer_version = 3, domain = 4,
        // model_version = 5, doc_string = 6, graph = 7, opset_import = 8,
        // metadata_props = 14. OperatorSetIdProto: domain = 1, version = 2.
        // StringStringEntryProto: key = 1, value = 2.
        let mut out = Out::default();
        out.int(1, IR_VERSION);
        out.string_opt(2, &self.producer_name);
        out.string_opt(3, &self.producer_version);
        out.string_opt(4, &self.domain);
        out.int(5, self.version);
        out.string_opt(6, &self.doc);
        out.message(7, |o| self.graph.encode(o));
        for (domain, version) in &self.opsets {
            out.message(8, |o| {
                o.string(1, domain);
                o.int(2, *version);
            });
        }
        for (key, value) in &self.metadata {
            out.message(14, |o| {
                o.string(1, key);
                o.string(2, value);
            });
        }
        out.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_follow_the_protobuf_wire_format() {
        // Examples from the protobuf encoding guide: 150 -> 96 01; field 1 varint 150 ->
        // 08 96 01; negative int64 takes ten bytes.
        let mut out = Out::default();
        out.varint(150);
        assert_eq!(out.0, [0x96, 0x01]);
        let mut out = Out::default();
        out.int(1, 150);
        assert_eq!(out.0, [0x08, 0x96, 0x01]);
        let mut out = Out::default();
        out.int(1, -1);
        assert_eq!(out.0.len(), 11);
        assert_eq!(
            out.0[1..],
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        // Field 2, "testing" -> 12 07 74 65 73 74 69 6e 67.
        let mut out = Out::default();
        out.string(2, "testing");
        assert_eq!(out.0, b"\x12\x07testing");
        // Packed field 4 of 3, 270, 86942 -> 22 06 03 8E 02 9E A7 05.
        let mut out = Out::default();
        out.packed_ints(4, &[3, 270, 86942]);
        assert_eq!(out.0, [0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05]);
    }

    #[test]
    fn a_tensor_encodes_dims_type_name_and_raw_little_endian_data() {
        let t = Tensor {
            name: "w".into(),
            dims: vec![2],
            data: TensorData::Float(vec![1.0, -2.0]),
        };
        let mut out = Out::default();
        t.encode(&mut out);
        let mut want = vec![0x0a, 0x01, 0x02, 0x10, 0x01, 0x42, 0x01, b'w', 0x4a, 0x08];
        want.extend_from_slice(&1.0f32.to_le_bytes());
        want.extend_from_slice(&(-2.0f32).to_le_bytes());
        assert_eq!(out.0, want);
    }
}

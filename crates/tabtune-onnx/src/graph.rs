//! Building a graph: unique value names, nodes, constants (shared by value), and the handful of
//! ops the exporter composes everything from.

use std::collections::{HashMap, HashSet};

use crate::proto::{Attr, DataType, Graph, Node, Tensor, TensorData, ValueInfo};

/// The ai.onnx.ml domain (tree ensembles, label encoders).
pub(crate) const ML: &str = "ai.onnx.ml";

/// A graph under construction. Values are named by strings; every op returns the name of its
/// (single) output.
#[derive(Default)]
pub(crate) struct Builder {
    nodes: Vec<Node>,
    initializers: Vec<Tensor>,
    inputs: Vec<ValueInfo>,
    outputs: Vec<ValueInfo>,
    used: HashSet<String>,
    /// Constants already added, by content (so each scalar is stored once).
    constants: HashMap<(u8, Vec<i64>, Vec<u64>), String>,
}

/// Attributes of one node.
pub(crate) type Attrs = Vec<(&'static str, Attr)>;

impl Builder {
    /// A value name not used yet, from `hint` (made of letters, digits, `_`, `.`, `=`).
    pub(crate) fn fresh(&mut self, hint: &str) -> String {
        let base: String = hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '=') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut name = base.clone();
        let mut i = 1;
        while self.used.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.used.insert(name.clone());
        name
    }

    /// Declares a graph input (its name is taken as given).
    pub(crate) fn input(&mut self, info: ValueInfo) -> String {
        self.used.insert(info.name.clone());
        let name = info.name.clone();
        self.inputs.push(info);
        name
    }

    /// Declares `value` as a graph output named `info.name` (through an Identity when the
    /// names differ).
    pub(crate) fn output(&mut self, value: &str, info: ValueInfo) {
        if value != info.name {
            let name = info.name.clone();
            self.used.insert(name.clone());
            self.nodes.push(Node {
                name: format!("output.{name}"),
                op_type: "Identity".into(),
                domain: String::new(),
                inputs: vec![value.to_owned()],
                outputs: vec![name],
                attributes: Vec::new(),
            });
        }
        self.outputs.push(info);
    }

    /// Adds a node of `domain` with one output named after `hint`.
    pub(crate) fn node_in(
        &mut self,
        domain: &str,
        op: &str,
        inputs: &[&str],
        attrs: Attrs,
        hint: &str,
    ) -> String {
        let out = self.fresh(hint);
        self.nodes.push(Node {
            name: format!("{op}.{out}"),
            op_type: op.to_owned(),
            domain: domain.to_owned(),
            inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
            outputs: vec![out.clone()],
            attributes: attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        });
        out
    }

    /// Adds a node of the default domain.
    pub(crate) fn node(&mut self, op: &str, inputs: &[&str], attrs: Attrs, hint: &str) -> String {
        self.node_in("", op, inputs, attrs, hint)
    }

    /// A constant tensor (stored once per distinct content).
    pub(crate) fn constant(&mut self, hint: &str, dims: Vec<i64>, data: TensorData) -> String {
        let key = match &data {
            TensorData::Float(v) => (1u8, v.iter().map(|x| u64::from(x.to_bits())).collect()),
            TensorData::Double(v) => (11, v.iter().map(|x| x.to_bits()).collect()),
            TensorData::Int64(v) => (7, v.iter().map(|x| *x as u64).collect()),
        };
        let key = (key.0, dims.clone(), key.1);
        if let Some(name) = self.constants.get(&key) {
            return name.clone();
        }
        let name = self.fresh(hint);
        self.initializers.push(Tensor {
            name: name.clone(),
            dims,
            data,
        });
        self.constants.insert(key, name.clone());
        name
    }

    /// A double scalar.
    pub(crate) fn f64(&mut self, v: f64) -> String {
        self.constant("c", Vec::new(), TensorData::Double(vec![v]))
    }

    /// A float scalar.
    pub(crate) fn f32(&mut self, v: f32) -> String {
        self.constant("c", Vec::new(), TensorData::Float(vec![v]))
    }

    /// A 1-D int64 tensor (axes, shapes, indices).
    pub(crate) fn i64s(&mut self, v: &[i64]) -> String {
        self.constant("i", vec![v.len() as i64], TensorData::Int64(v.to_vec()))
    }

    /// A float tensor of shape `dims`.
    pub(crate) fn f32_tensor(&mut self, hint: &str, dims: &[usize], v: Vec<f32>) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), v.len());
        self.constant(
            hint,
            dims.iter().map(|&d| d as i64).collect(),
            TensorData::Float(v),
        )
    }

    /// A double tensor of shape `dims`.
    pub(crate) fn f64_tensor(&mut self, hint: &str, dims: &[usize], v: Vec<f64>) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), v.len());
        self.constant(
            hint,
            dims.iter().map(|&d| d as i64).collect(),
            TensorData::Double(v),
        )
    }

    // Element-wise and shape ops (ai.onnx opset 17).

    pub(crate) fn binary(&mut self, op: &str, a: &str, b: &str, hint: &str) -> String {
        self.node(op, &[a, b], Vec::new(), hint)
    }

    pub(crate) fn add(&mut self, a: &str, b: &str, hint: &str) -> String {
        self.binary("Add", a, b, hint)
    }

    pub(crate) fn sub(&mut self, a: &str, b: &str, hint: &str) -> String {
        self.binary("Sub", a, b, hint)
    }

    pub(crate) fn mul(&mut self, a: &str, b: &str, hint: &str) -> String {
        self.binary("Mul", a, b, hint)
    }

    pub(crate) fn div(&mut self, a: &str, b: &str, hint: &str) -> String {
        self.binary("Div", a, b, hint)
    }

    pub(crate) fn unary(&mut self, op: &str, a: &str, hint: &str) -> String {
        self.node(op, &[a], Vec::new(), hint)
    }

    pub(crate) fn cast(&mut self, a: &str, to: DataType, hint: &str) -> String {
        self.node("Cast", &[a], vec![("to", Attr::Int(to as i64))], hint)
    }

    /// `cond ? a : b`.
    pub(crate) fn where_(&mut self, cond: &str, a: &str, b: &str, hint: &str) -> String {
        self.node("Where", &[cond, a, b], Vec::new(), hint)
    }

    pub(crate) fn concat(&mut self, values: &[String], axis: i64, hint: &str) -> String {
        if values.len() == 1 {
            return values[0].clone();
        }
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        self.node("Concat", &refs, vec![("axis", Attr::Int(axis))], hint)
    }

    pub(crate) fn reshape(&mut self, a: &str, shape: &[i64], hint: &str) -> String {
        let shape = self.i64s(shape);
        self.node("Reshape", &[a, &shape], Vec::new(), hint)
    }

    pub(crate) fn unsqueeze(&mut self, a: &str, axes: &[i64], hint: &str) -> String {
        let axes = self.i64s(axes);
        self.node("Unsqueeze", &[a, &axes], Vec::new(), hint)
    }

    pub(crate) fn transpose(&mut self, a: &str, perm: &[i64], hint: &str) -> String {
        self.node(
            "Transpose",
            &[a],
            vec![("perm", Attr::Ints(perm.to_vec()))],
            hint,
        )
    }

    /// Columns `indices` of a `[N, F]` matrix, `[N, indices.len()]`.
    pub(crate) fn columns(&mut self, a: &str, indices: &[i64], hint: &str) -> String {
        let idx = self.i64s(indices);
        self.node("Gather", &[a, &idx], vec![("axis", Attr::Int(1))], hint)
    }

    /// Sum over `axes`, keeping them (ReduceSum takes its axes as an input from opset 13).
    pub(crate) fn reduce_sum(&mut self, a: &str, axes: &[i64], keep: bool, hint: &str) -> String {
        let axes = self.i64s(axes);
        self.node(
            "ReduceSum",
            &[a, &axes],
            vec![("keepdims", Attr::Int(i64::from(keep)))],
            hint,
        )
    }

    /// Mean over `axes` (ReduceMean takes its axes as an attribute up to opset 17).
    pub(crate) fn reduce_mean(&mut self, a: &str, axes: &[i64], keep: bool, hint: &str) -> String {
        self.node(
            "ReduceMean",
            &[a],
            vec![
                ("axes", Attr::Ints(axes.to_vec())),
                ("keepdims", Attr::Int(i64::from(keep))),
            ],
            hint,
        )
    }

    pub(crate) fn matmul(&mut self, a: &str, b: &str, hint: &str) -> String {
        self.binary("MatMul", a, b, hint)
    }

    pub(crate) fn softmax(&mut self, a: &str, axis: i64, hint: &str) -> String {
        self.node("Softmax", &[a], vec![("axis", Attr::Int(axis))], hint)
    }

    /// The finished graph.
    pub(crate) fn finish(self, name: &str, doc: &str) -> Graph {
        Graph {
            name: name.to_owned(),
            doc: doc.to_owned(),
            nodes: self.nodes,
            initializers: self.initializers,
            inputs: self.inputs,
            outputs: self.outputs,
        }
    }
}

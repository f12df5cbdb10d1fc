//! Search spaces: which parameters a sweep draws, from which distributions, under which
//! conditions, and which parameters stay fixed.
//!
//! A space is read from TOML (`configs/sweeps/*.toml`, format in `configs/sweeps/README.md`):
//!
//! ```toml
//! direction = "maximize"          # optional
//! metric = "accuracy"             # optional
//!
//! [fixed]
//! n_estimators = 500
//!
//! [params.family]
//! type = "categorical"
//! choices = ["gbdt-leafwise", "gbdt-depthwise"]
//!
//! [params.learning_rate]
//! type = "float"
//! low = 0.01
//! high = 0.3
//! log = true
//!
//! [params.num_leaves]
//! type = "int"
//! low = 8
//! high = 256
//! log = true
//! when = { family = "gbdt-leafwise" }
//! ```
//!
//! Parameters are kept in an order where every condition's parent comes before the parameters
//! it gates (unconditional parameters first, then by depth; ties by name), so a sampler that
//! walks [`SearchSpace::params`] in order always knows whether a parameter is active.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::error::{Result, SpaceProblem, TuneError};
use crate::model::{Choice, Direction, Distribution, ParamValue};

/// A condition on an earlier categorical parameter: the gated parameter is drawn only when
/// `param` is active and took one of `values`.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// The parent parameter (a categorical of the same space).
    pub param: String,
    /// The parent's values under which the gated parameter is active.
    pub values: Vec<Choice>,
}

/// One parameter of a space.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Name, as the objective reads it (e.g. `learning_rate`).
    pub name: String,
    /// Where its values come from.
    pub distribution: Distribution,
    /// All must hold for the parameter to be drawn (empty: always drawn).
    pub when: Vec<Condition>,
}

impl ParamSpec {
    /// An unconditional parameter.
    pub fn new(name: impl Into<String>, distribution: Distribution) -> Self {
        Self {
            name: name.into(),
            distribution,
            when: Vec::new(),
        }
    }

    /// Adds a condition: active only when `param` took one of `values`.
    #[must_use]
    pub fn when(mut self, param: impl Into<String>, values: Vec<Choice>) -> Self {
        self.when.push(Condition {
            param: param.into(),
            values,
        });
        self
    }

    /// Whether the parameter is drawn, given the values assigned so far to the parameters
    /// before it. A parent that is itself inactive has no value, so its children are inactive.
    pub fn is_active(&self, assigned: &BTreeMap<String, ParamValue>) -> bool {
        self.when.iter().all(|c| match assigned.get(&c.param) {
            Some(ParamValue::Choice(v)) => c.values.contains(v),
            _ => false,
        })
    }
}

/// A validated search space.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchSpace {
    params: Vec<ParamSpec>,
    fixed: BTreeMap<String, Value>,
    direction: Option<Direction>,
    metric: Option<String>,
}

impl SearchSpace {
    /// Builds and validates a space (`origin` names the source in error messages). Parameters
    /// are reordered so that parents come before the parameters they gate.
    pub fn new(
        params: Vec<ParamSpec>,
        fixed: BTreeMap<String, Value>,
        direction: Option<Direction>,
        metric: Option<String>,
    ) -> Result<Self> {
        Self::build(params, fixed, direction, metric, "search space")
    }

    fn build(
        params: Vec<ParamSpec>,
        fixed: BTreeMap<String, Value>,
        direction: Option<Direction>,
        metric: Option<String>,
        origin: &str,
    ) -> Result<Self> {
        let bad = |key: &str, problem: SpaceProblem| TuneError::space(origin, key, problem);
        let mut by_name: BTreeMap<&str, &ParamSpec> = BTreeMap::new();
        for p in &params {
            let key = format!("params.{}", p.name);
            if p.name.is_empty() {
                return Err(bad("params", SpaceProblem::EmptyName));
            }
            if by_name.insert(&p.name, p).is_some() {
                return Err(bad(
                    &key,
                    SpaceProblem::DeclaredTwice {
                        name: p.name.clone(),
                    },
                ));
            }
            if fixed.contains_key(&p.name) {
                return Err(bad(
                    &key,
                    SpaceProblem::AlsoFixed {
                        name: p.name.clone(),
                    },
                ));
            }
            p.distribution.check(&p.name).map_err(|e| match e {
                TuneError::Distribution { param, problem } => {
                    bad(&key, SpaceProblem::Distribution { param, problem })
                }
                other => other,
            })?;
        }
        for p in &params {
            let key = format!("params.{}.when", p.name);
            let mut seen = BTreeSet::new();
            for c in &p.when {
                if !seen.insert(c.param.as_str()) {
                    return Err(bad(
                        &key,
                        SpaceProblem::NamedTwice {
                            parent: c.param.clone(),
                        },
                    ));
                }
                if c.param == p.name {
                    return Err(bad(&key, SpaceProblem::SelfCondition));
                }
                let Some(parent) = by_name.get(c.param.as_str()) else {
                    return Err(bad(
                        &key,
                        SpaceProblem::UnknownParent {
                            parent: c.param.clone(),
                        },
                    ));
                };
                let Distribution::Categorical { choices } = &parent.distribution else {
                    return Err(bad(
                        &key,
                        SpaceProblem::ParentNotCategorical {
                            parent: c.param.clone(),
                        },
                    ));
                };
                if c.values.is_empty() {
                    return Err(bad(
                        &format!("{key}.{}", c.param),
                        SpaceProblem::NoConditionValues,
                    ));
                }
                if let Some(v) = c.values.iter().find(|v| !choices.contains(v)) {
                    return Err(bad(
                        &format!("{key}.{}", c.param),
                        SpaceProblem::NotAChoice {
                            value: v.clone(),
                            choices: choices.clone(),
                        },
                    ));
                }
            }
        }
        // Depth of each parameter in the condition graph (cycles are errors).
        let mut depth: BTreeMap<String, usize> = BTreeMap::new();
        for p in &params {
            let mut stack = Vec::new();
            depth_of(&p.name, &by_name, &mut depth, &mut stack).map_err(|cycle| {
                bad(
                    &format!("params.{}.when", p.name),
                    SpaceProblem::Cycle { cycle },
                )
            })?;
        }
        let mut params = params;
        params.sort_by(|a, b| {
            depth[&a.name]
                .cmp(&depth[&b.name])
                .then(a.name.cmp(&b.name))
        });
        Ok(Self {
            params,
            fixed,
            direction,
            metric,
        })
    }

    /// Reads a space from a TOML file; errors name the file and the key.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| TuneError::SpaceRead {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses a space from TOML text; `origin` (a file name) starts every error message.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        let table: toml::Table = toml::from_str(text).map_err(|source| TuneError::SpaceToml {
            origin: origin.to_owned(),
            source,
        })?;
        let bad = |key: &str, problem: SpaceProblem| TuneError::space(origin, key, problem);
        let wrong = |key: &str, expected: &'static str, found: &toml::Value| {
            bad(
                key,
                SpaceProblem::WrongType {
                    expected,
                    found: toml_found(found),
                },
            )
        };
        let mut direction = None;
        let mut metric = None;
        let mut fixed = BTreeMap::new();
        let mut params = Vec::new();
        for (key, value) in &table {
            match key.as_str() {
                "direction" => {
                    const EXPECTED: &str = "\"minimize\" or \"maximize\"";
                    let s = value.as_str().ok_or_else(|| wrong(key, EXPECTED, value))?;
                    direction =
                        Some(Direction::parse(s).ok_or_else(|| wrong(key, EXPECTED, value))?);
                }
                "metric" => {
                    metric = Some(
                        value
                            .as_str()
                            .ok_or_else(|| wrong(key, "a string (a metric name)", value))?
                            .to_owned(),
                    );
                }
                "fixed" => {
                    let t = value
                        .as_table()
                        .ok_or_else(|| wrong(key, "a table of name = value", value))?;
                    for (name, v) in t {
                        fixed.insert(name.clone(), toml_to_json(v));
                    }
                }
                "params" => {
                    let t = value
                        .as_table()
                        .ok_or_else(|| wrong(key, "tables [params.NAME]", value))?;
                    for (name, spec) in t {
                        params.push(parse_param(name, spec, origin)?);
                    }
                }
                other => {
                    return Err(bad(
                        other,
                        SpaceProblem::UnknownKey {
                            table: "a search space".to_owned(),
                            expected: vec!["direction", "metric", "fixed", "params"],
                        },
                    ));
                }
            }
        }
        if params.is_empty() {
            return Err(bad("params", SpaceProblem::NoParams));
        }
        Self::build(params, fixed, direction, metric, origin)
    }

    /// The parameters, parents before the parameters they gate.
    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    /// A parameter by name.
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Fixed parameters (name → value), passed to every trial unchanged.
    pub fn fixed(&self) -> &BTreeMap<String, Value> {
        &self.fixed
    }

    /// The direction the file asks for, if any.
    pub fn direction(&self) -> Option<Direction> {
        self.direction
    }

    /// The metric the file names, if any.
    pub fn metric(&self) -> Option<&str> {
        self.metric.as_deref()
    }

    /// Whether the space has conditional parameters.
    pub fn is_conditional(&self) -> bool {
        self.params.iter().any(|p| !p.when.is_empty())
    }

    /// Checks a complete parameter set against the space: every active parameter present with a
    /// value of its distribution, no inactive or unknown parameter.
    pub fn check_params(&self, values: &BTreeMap<String, ParamValue>) -> Result<()> {
        let mut assigned = BTreeMap::new();
        for p in &self.params {
            let active = p.is_active(&assigned);
            match (active, values.get(&p.name)) {
                (true, Some(v)) if p.distribution.contains(v) => {
                    assigned.insert(p.name.clone(), v.clone());
                }
                (true, Some(v)) => {
                    return Err(TuneError::ParamOutside {
                        param: p.name.clone(),
                        value: v.clone(),
                        distribution: p.distribution.clone(),
                    });
                }
                (true, None) => {
                    return Err(TuneError::ParamMissing {
                        param: p.name.clone(),
                    });
                }
                (false, Some(v)) => {
                    return Err(TuneError::ParamInactive {
                        param: p.name.clone(),
                        value: v.clone(),
                    });
                }
                (false, None) => {}
            }
        }
        if let Some(unknown) = values.keys().find(|k| self.param(k).is_none()) {
            return Err(TuneError::ParamUnknown {
                param: unknown.clone(),
                known: self.params.iter().map(|p| p.name.clone()).collect(),
            });
        }
        Ok(())
    }
}

fn depth_of(
    name: &str,
    by_name: &BTreeMap<&str, &ParamSpec>,
    depth: &mut BTreeMap<String, usize>,
    stack: &mut Vec<String>,
) -> std::result::Result<usize, Vec<String>> {
    if let Some(d) = depth.get(name) {
        return Ok(*d);
    }
    if stack.iter().any(|s| s == name) {
        stack.push(name.to_owned());
        return Err(stack.clone());
    }
    stack.push(name.to_owned());
    let mut d = 0;
    for c in &by_name[name].when {
        d = d.max(1 + depth_of(&c.param, by_name, depth, stack)?);
    }
    stack.pop();
    depth.insert(name.to_owned(), d);
    Ok(d)
}

fn parse_param(name: &str, spec: &toml::Value, origin: &str) -> Result<ParamSpec> {
    const TYPES: &str = "\"float\", \"int\" or \"categorical\"";
    const CHOICE: &str = "a string, number or bool";
    let bad = |key: &str, problem: SpaceProblem| TuneError::space(origin, key, problem);
    let wrong = |key: &str, expected: &'static str, found: &toml::Value| {
        bad(
            key,
            SpaceProblem::WrongType {
                expected,
                found: toml_found(found),
            },
        )
    };
    let missing = |key: &str, expected: &'static str| bad(key, SpaceProblem::Missing { expected });
    let key = format!("params.{name}");
    let sub = |k: &str| format!("{key}.{k}");
    let t = spec
        .as_table()
        .ok_or_else(|| wrong(&key, "a table with `type`", spec))?;
    let kind = t.get("type").ok_or_else(|| missing(&sub("type"), TYPES))?;
    let kind = kind
        .as_str()
        .ok_or_else(|| wrong(&sub("type"), TYPES, kind))?;
    let allowed: &[&'static str] = match kind {
        "float" | "int" => &["type", "low", "high", "log", "step", "when"],
        "categorical" => &["type", "choices", "when"],
        other => {
            return Err(bad(
                &sub("type"),
                SpaceProblem::UnknownType {
                    found: other.to_owned(),
                },
            ));
        }
    };
    if let Some(unknown) = t.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(
            &sub(unknown),
            SpaceProblem::UnknownKey {
                table: format!("a {kind} parameter"),
                expected: allowed.to_vec(),
            },
        ));
    }
    let log = match t.get("log") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| wrong(&sub("log"), "true or false", v))?,
    };
    let distribution = match kind {
        "float" => {
            let num = |k: &str| -> Result<f64> {
                match t.get(k) {
                    Some(toml::Value::Float(x)) => Ok(*x),
                    Some(toml::Value::Integer(i)) => Ok(*i as f64),
                    Some(v) => Err(wrong(&sub(k), "a number", v)),
                    None => Err(missing(
                        &sub(k),
                        "a number (a float parameter needs low and high)",
                    )),
                }
            };
            let step = if t.contains_key("step") {
                Some(num("step")?)
            } else {
                None
            };
            Distribution::Float {
                low: num("low")?,
                high: num("high")?,
                log,
                step,
            }
        }
        "int" => {
            let int = |k: &str| -> Result<i64> {
                match t.get(k) {
                    Some(toml::Value::Integer(i)) => Ok(*i),
                    Some(v) => Err(wrong(&sub(k), "an integer", v)),
                    None => Err(missing(
                        &sub(k),
                        "an integer (an int parameter needs low and high)",
                    )),
                }
            };
            let step = if t.contains_key("step") {
                int("step")?
            } else {
                1
            };
            Distribution::Int {
                low: int("low")?,
                high: int("high")?,
                log,
                step,
            }
        }
        _ => {
            let cs = t.get("choices").ok_or_else(|| {
                missing(
                    &sub("choices"),
                    "an array (a categorical parameter needs choices)",
                )
            })?;
            let cs = cs
                .as_array()
                .ok_or_else(|| wrong(&sub("choices"), "an array", cs))?;
            let mut choices = Vec::with_capacity(cs.len());
            for (i, c) in cs.iter().enumerate() {
                let at = format!("{key}.choices[{i}]");
                let choice = toml_to_choice(c).ok_or_else(|| wrong(&at, CHOICE, c))?;
                if choices.contains(&choice) {
                    return Err(bad(&at, SpaceProblem::ListedTwice { choice }));
                }
                choices.push(choice);
            }
            Distribution::Categorical { choices }
        }
    };
    let mut when = Vec::new();
    if let Some(w) = t.get("when") {
        let w = w
            .as_table()
            .ok_or_else(|| wrong(&sub("when"), "a table { parent = value or [values] }", w))?;
        for (parent, values) in w {
            let wkey = format!("{key}.when.{parent}");
            let choice = |v: &toml::Value| toml_to_choice(v).ok_or_else(|| wrong(&wkey, CHOICE, v));
            let values: Vec<Choice> = match values {
                toml::Value::Array(a) => a.iter().map(choice).collect::<Result<_>>()?,
                v => vec![choice(v)?],
            };
            when.push(Condition {
                param: parent.clone(),
                values,
            });
        }
    }
    Ok(ParamSpec {
        name: name.to_owned(),
        distribution,
        when,
    })
}

/// A TOML value as an error message shows it: scalars as written, arrays and tables by kind.
fn toml_found(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) => "an array".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
    }
}

fn toml_to_choice(v: &toml::Value) -> Option<Choice> {
    Some(match v {
        toml::Value::String(s) => Choice::Str(s.clone()),
        toml::Value::Integer(i) => Choice::Int(*i),
        toml::Value::Float(f) => Choice::Float(*f),
        toml::Value::Boolean(b) => Choice::Bool(*b),
        _ => return None,
    })
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
direction = "maximize"
metric = "accuracy"

[fixed]
rounds = 300
objective = "multiclass"

[params.num_leaves]
type = "int"
low = 8
high = 256
log = true
when = { family = "gbdt-leafwise" }

[params.family]
type = "categorical"
choices = ["gbdt-leafwise", "gbdt-depthwise"]

[params.learning_rate]
type = "float"
low = 0.01
high = 0.3
log = true

[params.subsample]
type = "float"
low = 0.5
high = 1
step = 0.1
"#;

    fn err(text: &str) -> String {
        SearchSpace::from_toml_str(text, "s.toml")
            .expect_err("must fail")
            .to_string()
    }

    #[test]
    fn parses_and_orders_parents_first() {
        let s = SearchSpace::from_toml_str(GOOD, "s.toml").expect("valid");
        let names: Vec<&str> = s.params().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["family", "learning_rate", "subsample", "num_leaves"]
        );
        assert_eq!(s.direction(), Some(Direction::Maximize));
        assert_eq!(s.metric(), Some("accuracy"));
        assert_eq!(s.fixed()["rounds"], Value::from(300));
        assert!(s.is_conditional());
        assert_eq!(
            s.param("subsample").expect("valid").distribution,
            Distribution::Float {
                low: 0.5,
                high: 1.0,
                log: false,
                step: Some(0.1)
            }
        );
        let leaves = s.param("num_leaves").expect("valid");
        let mut assigned = BTreeMap::new();
        assert!(!leaves.is_active(&assigned), "parent not drawn yet");
        assigned.insert(
            "family".into(),
            ParamValue::Choice(Choice::Str("gbdt-depthwise".into())),
        );
        assert!(!leaves.is_active(&assigned));
        assigned.insert(
            "family".into(),
            ParamValue::Choice(Choice::Str("gbdt-leafwise".into())),
        );
        assert!(leaves.is_active(&assigned));
    }

    #[test]
    fn shipped_spaces_parse() {
        let root = tabtune_test::workspace_root();
        let dir = root.join("configs/sweeps");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("configs/sweeps") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = SearchSpace::from_toml_file(&path).unwrap_or_else(|e| panic!("{e}"));
                assert!(!s.params().is_empty(), "{}", path.display());
                n += 1;
            }
        }
        assert!(n >= 12, "{n} spaces in {}", dir.display());
        for name in ["gbdt.toml", "nn.toml", "all.toml"] {
            let path = root.join("configs/sweeps").join(name);
            let s = SearchSpace::from_toml_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(s.params().len() >= 5, "{name}");
            assert!(
                s.param("family").is_some_and(|p| p.when.is_empty()),
                "{name}"
            );
            assert_eq!(s.direction(), Some(Direction::Maximize), "{name}");
            let conditional = s.params().iter().position(|p| !p.when.is_empty());
            let family = s.params().iter().position(|p| p.name == "family");
            assert!(family < conditional, "{name}: parents first");
        }
    }

    #[test]
    fn check_params_follows_conditions() {
        let s = SearchSpace::from_toml_str(GOOD, "s.toml").expect("valid");
        let mut v = BTreeMap::from([
            (
                "family".to_owned(),
                ParamValue::Choice(Choice::Str("gbdt-depthwise".into())),
            ),
            ("learning_rate".to_owned(), ParamValue::Float(0.1)),
            ("subsample".to_owned(), ParamValue::Float(0.7)),
        ]);
        s.check_params(&v).expect("valid");
        v.insert("num_leaves".into(), ParamValue::Int(31));
        let e = s.check_params(&v).expect_err("must fail").to_string();
        assert!(e.contains("`num_leaves`") && e.contains("condition"), "{e}");
        v.insert(
            "family".into(),
            ParamValue::Choice(Choice::Str("gbdt-leafwise".into())),
        );
        s.check_params(&v).expect("valid");
        v.insert("subsample".into(), ParamValue::Float(0.75));
        let e = s.check_params(&v).expect_err("must fail").to_string();
        assert!(e.contains("`subsample`"), "{e}");
        v.insert("subsample".into(), ParamValue::Float(0.7));
        v.insert("bogus".into(), ParamValue::Int(1));
        assert!(
            s.check_params(&v)
                .expect_err("must fail")
                .to_string()
                .contains("`bogus`")
        );
    }

    #[test]
    fn bad_configs_name_file_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "nonsense = 1\n[params.a]\ntype = \"int\"\nlow = 1\nhigh = 2",
                "s.toml: nonsense: unknown key",
            ),
            (
                "direction = \"up\"\n[params.a]\ntype = \"int\"\nlow = 1\nhigh = 2",
                "s.toml: direction: expected \"minimize\" or \"maximize\", got \"up\"",
            ),
            (
                "metric = 3\n[params.a]\ntype = \"int\"\nlow = 1\nhigh = 2",
                "s.toml: metric: expected a string",
            ),
            (
                "fixed = 3\n[params.a]\ntype = \"int\"\nlow = 1\nhigh = 2",
                "s.toml: fixed: expected a table",
            ),
            (
                "[fixed]\na = 1",
                "s.toml: params: the space declares no parameters",
            ),
            ("[params.a]\nlow = 1", "s.toml: params.a.type: missing"),
            (
                "[params.a]\ntype = \"normal\"",
                "s.toml: params.a.type: unknown type \"normal\"",
            ),
            (
                "[params.a]\ntype = \"int\"\nlow = 1\nhigh = 2\nlog_scale = true",
                "s.toml: params.a.log_scale: unknown key for a int parameter",
            ),
            (
                "[params.a]\ntype = \"int\"\nlow = 1.5\nhigh = 2",
                "s.toml: params.a.low: expected an integer",
            ),
            (
                "[params.a]\ntype = \"int\"\nlow = 1",
                "s.toml: params.a.high: missing",
            ),
            (
                "[params.a]\ntype = \"float\"\nlow = \"x\"\nhigh = 2",
                "s.toml: params.a.low: expected a number",
            ),
            (
                "[params.a]\ntype = \"float\"\nlow = 0\nhigh = 1\nlog = true",
                "s.toml: params.a: parameter `a`: a log scale needs low > 0",
            ),
            (
                "[params.a]\ntype = \"float\"\nlow = 2\nhigh = 1",
                "s.toml: params.a: parameter `a`: low (2) must not exceed high (1)",
            ),
            (
                "[params.a]\ntype = \"float\"\nlow = 1\nhigh = 2\nlog = \"yes\"",
                "s.toml: params.a.log: expected true or false",
            ),
            (
                "[params.a]\ntype = \"float\"\nlow = 1\nhigh = 2\nlog = true\nstep = 0.5",
                "s.toml: params.a: parameter `a`: `step` and `log` cannot be used together",
            ),
            (
                "[params.a]\ntype = \"int\"\nlow = 1\nhigh = 9\nstep = 0",
                "s.toml: params.a: parameter `a`: step must be >= 1",
            ),
            (
                "[params.a]\ntype = \"categorical\"",
                "s.toml: params.a.choices: missing",
            ),
            (
                "[params.a]\ntype = \"categorical\"\nchoices = []",
                "s.toml: params.a: parameter `a`: a categorical needs at least one choice",
            ),
            (
                "[params.a]\ntype = \"categorical\"\nchoices = [\"x\", \"x\"]",
                "s.toml: params.a.choices[1]: `x` listed twice",
            ),
            (
                "[params.a]\ntype = \"categorical\"\nchoices = [[1]]",
                "s.toml: params.a.choices[0]: expected a string, number or bool",
            ),
            (
                "[params.a]\ntype = \"int\"\nlow = 1\nhigh = 2\nwhen = { b = \"x\" }",
                "s.toml: params.a.when: `b` is not a parameter of this space",
            ),
            (
                "[params.a]\ntype = \"int\"\nlow = 1\nhigh = 2\nwhen = { a = 1 }",
                "s.toml: params.a.when: a parameter cannot depend on itself",
            ),
            (
                "[params.b]\ntype = \"int\"\nlow = 1\nhigh = 2\n[params.a]\ntype = \"int\"\nlow = 1\nhigh = 2\nwhen = { b = 1 }",
                "s.toml: params.a.when: `b` must be a categorical parameter",
            ),
            (
                "[params.b]\ntype = \"categorical\"\nchoices = [\"x\"]\n[params.a]\ntype = \"int\"\nlow = 1\nhigh = 2\nwhen = { b = \"y\" }",
                "s.toml: params.a.when.b: `y` is not one of its choices (x)",
            ),
            (
                "[params.b]\ntype = \"categorical\"\nchoices = [\"x\"]\nwhen = { a = \"x\" }\n[params.a]\ntype = \"categorical\"\nchoices = [\"x\"]\nwhen = { b = \"x\" }",
                "conditions form a cycle",
            ),
            (
                "[fixed]\na = 1\n[params.a]\ntype = \"int\"\nlow = 1\nhigh = 2",
                "s.toml: params.a: `a` is also in [fixed]",
            ),
            ("[params.a\ntype = 1", "s.toml: not valid TOML"),
            ("params = 1", "s.toml: params: expected tables"),
        ];
        for (text, expected) in cases {
            let e = err(text);
            assert!(
                e.contains(expected),
                "{text}\n  gave: {e}\n  want: {expected}"
            );
        }
        let e =
            SearchSpace::from_toml_file(Path::new("/no/such/space.toml")).expect_err("must fail");
        assert!(
            e.to_string().contains("/no/such/space.toml") && e.is_bad_input(),
            "{e}"
        );
    }

    #[test]
    fn built_spaces_are_validated_too() {
        let cat = Distribution::Categorical {
            choices: vec![Choice::Str("a".into())],
        };
        let int = Distribution::Int {
            low: 1,
            high: 3,
            log: false,
            step: 1,
        };
        let e = SearchSpace::new(
            vec![
                ParamSpec::new("x", int.clone()),
                ParamSpec::new("x", int.clone()),
            ],
            BTreeMap::new(),
            None,
            None,
        )
        .expect_err("must fail");
        assert!(e.to_string().contains("params.x: declared twice"), "{e}");
        let s = SearchSpace::new(
            vec![
                ParamSpec::new("y", int).when("c", vec![Choice::Str("a".into())]),
                ParamSpec::new("c", cat),
            ],
            BTreeMap::new(),
            None,
            None,
        )
        .expect("valid");
        assert_eq!(s.params()[0].name, "c");
    }
}

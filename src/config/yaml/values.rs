//! Values read without a target type: scalars whose wrong types get their own message (and map
//! keys, which must be text), and free-form `metadata`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::duplicates::KeysSeen;

/// A scalar read without a target type: map keys (which must be text) and fields whose wrong
/// types get their own message.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Text(String),
    Collection,
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("<nil>"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            // Past 2^53 a float no longer holds every integer: its shortest decimal would
            // show digits that were never written (2^64 as 18446744073709552000).
            Scalar::Float(x) if x.fract() == 0.0 && x.abs() >= 9_007_199_254_740_992.0 => {
                write!(f, "{x:e}")
            }
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Text(s) => write!(f, "{s:?}"),
            Scalar::Collection => f.write_str("a list or map"),
        }
    }
}

/// Free-form `metadata`, kept as a tree to be returned to Envoy as a protobuf `Struct`.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    List(Vec<MetaValue>),
    Map(Vec<(String, MetaValue)>),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Scalar, E> {
                Ok(Scalar::Int(i128::try_from(v).unwrap_or(i128::MAX)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Collection)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Collection)
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl<'de> Deserialize<'de> for MetaValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MetaVisitor;
        impl<'de> Visitor<'de> for MetaVisitor {
            type Value = MetaValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("metadata")
            }
            fn visit_unit<E>(self) -> Result<MetaValue, E> {
                Ok(MetaValue::Null)
            }
            fn visit_none<E>(self) -> Result<MetaValue, E> {
                Ok(MetaValue::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<MetaValue, E> {
                Ok(MetaValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<MetaValue, E> {
                Ok(MetaValue::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<MetaValue, E> {
                Ok(MetaValue::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<MetaValue, E> {
                Ok(MetaValue::Number(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<MetaValue, E> {
                Ok(MetaValue::Text(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MetaValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(MetaValue::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetaValue, A::Error> {
                let mut entries = Vec::new();
                let mut seen = KeysSeen::default();
                while let Some(key) = map.next_key::<Scalar>()? {
                    match key {
                        Scalar::Text(name) => {
                            seen.first(&name)?;
                            entries.push((name, map.next_value()?));
                        }
                        other => {
                            return Err(de::Error::custom(format!(
                                "error parsing metadata: key is not of type string: {other}"
                            )));
                        }
                    }
                }
                Ok(MetaValue::Map(entries))
            }
        }
        deserializer.deserialize_any(MetaVisitor)
    }
}

//! The envoyproxy/ratelimit YAML format, read into documents that keep every node's position.
//!
//! Unknown keys, non-string keys and list items that are not maps are recorded rather than
//! failing the parse, so that validation can report them with the Go service's wording and the
//! line and column they sit at. Scalars are read with the field's type as schema: `value: 1.10`
//! stays the string `1.10`, as in the Go service.

pub mod budget;
mod duplicates;
mod values;

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

pub use duplicates::appears_twice;
pub use values::{MetaValue, Scalar};

use duplicates::KeysSeen;

/// A value with the position it was read from.
pub type At<T> = Spanned<T>;

/// One YAML file: one domain.
#[derive(Debug, Default)]
pub struct FileDoc {
    pub domain: Option<At<String>>,
    pub descriptors: Vec<At<Item<DescriptorDoc>>>,
    pub stray_keys: Vec<At<StrayKey>>,
}

/// A list element: a map as expected, or something else, kept as text for the error message.
#[derive(Debug)]
pub enum Item<T> {
    Map(T),
    NotAMap(String),
}

/// A map key that does not belong where it was found.
#[derive(Debug)]
pub enum StrayKey {
    /// A string key the format does not have here (a misspelling such as `ratelimit`).
    Unknown(String),
    /// A key that is not a string (`0.25: x`), rendered as text.
    NotText(String),
}

#[derive(Debug, Default)]
pub struct DescriptorDoc {
    pub key: Option<At<String>>,
    pub value: Option<At<String>>,
    pub rate_limit: Option<At<RateLimitsDoc>>,
    pub descriptors: Vec<At<Item<DescriptorDoc>>>,
    pub shadow_mode: bool,
    pub quota_mode: bool,
    pub detailed_metric: bool,
    pub value_to_metric: bool,
    pub share_threshold: bool,
    pub metadata: Option<At<MetaValue>>,
    pub stray_keys: Vec<At<StrayKey>>,
}

/// A descriptor's `rate_limit`: one map (the Go service's form) or a list of them (ours).
#[derive(Debug)]
pub enum RateLimitsDoc {
    One(Box<RateLimitDoc>),
    List(Vec<At<Item<RateLimitDoc>>>),
}

#[derive(Debug, Default)]
pub struct RateLimitDoc {
    pub unit: Option<At<String>>,
    pub requests_per_unit: Option<At<Scalar>>,
    pub unit_multiplier: Option<At<Scalar>>,
    pub algorithm: Option<At<String>>,
    pub burst: Option<At<Scalar>>,
    /// `unlimited`, where it was written (null reads as false).
    pub unlimited: Option<At<bool>>,
    pub name: Option<At<String>>,
    pub replaces: Vec<At<Item<ReplaceDoc>>>,
    pub stray_keys: Vec<At<StrayKey>>,
}

impl RateLimitDoc {
    pub fn is_unlimited(&self) -> bool {
        self.unlimited.as_ref().is_some_and(|flag| flag.value)
    }
}

#[derive(Debug, Default)]
pub struct ReplaceDoc {
    pub name: Option<At<String>>,
    pub stray_keys: Vec<At<StrayKey>>,
}

/// Parses one file's text.
pub fn parse(text: &str) -> Result<FileDoc, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options::<Document>(text, budget::options(text.len()))
        .map(|document| document.0)
}

/// The top level: a map, or nothing at all (an empty file is a file without a domain).
struct Document(FileDoc);

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DocumentVisitor;
        impl<'de> Visitor<'de> for DocumentVisitor {
            type Value = Document;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map with `domain` and `descriptors`")
            }
            fn visit_unit<E>(self) -> Result<Document, E> {
                Ok(Document(FileDoc::default()))
            }
            fn visit_none<E>(self) -> Result<Document, E> {
                Ok(Document(FileDoc::default()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Document, A::Error> {
                read_fields(map).map(Document)
            }
        }
        deserializer.deserialize_any(DocumentVisitor)
    }
}

/// A map-shaped document part: how each of its known fields is read.
trait Fields: Default {
    /// Reads the value of field `name`; `Ok(false)` when the field is not known here.
    fn read<'de, A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<bool, A::Error>;
    fn stray_keys(&mut self) -> &mut Vec<At<StrayKey>>;
}

fn read_fields<'de, T: Fields, A: MapAccess<'de>>(mut map: A) -> Result<T, A::Error> {
    let mut fields = T::default();
    let mut seen = KeysSeen::default();
    while let Some(key) = map.next_key::<At<Scalar>>()? {
        let stray = match key.value {
            Scalar::Text(name) => {
                seen.first(&name)?;
                if fields.read(&name, &mut map)? {
                    continue;
                }
                StrayKey::Unknown(name)
            }
            other => StrayKey::NotText(other.to_string()),
        };
        map.next_value::<IgnoredAny>()?;
        fields.stray_keys().push(At {
            value: stray,
            referenced: key.referenced,
            defined: key.defined,
        });
    }
    Ok(fields)
}

impl Fields for FileDoc {
    fn read<'de, A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<bool, A::Error> {
        match name {
            "domain" => self.domain = read_text(map)?,
            "descriptors" => self.descriptors = read_list(map)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
    fn stray_keys(&mut self) -> &mut Vec<At<StrayKey>> {
        &mut self.stray_keys
    }
}

impl Fields for DescriptorDoc {
    fn read<'de, A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<bool, A::Error> {
        match name {
            "key" => self.key = read_text(map)?,
            "value" => self.value = read_text(map)?,
            "rate_limit" => self.rate_limit = map.next_value()?,
            "descriptors" => self.descriptors = read_list(map)?,
            "shadow_mode" => self.shadow_mode = read_flag(map)?,
            "quota_mode" => self.quota_mode = read_flag(map)?,
            "detailed_metric" => self.detailed_metric = read_flag(map)?,
            "value_to_metric" => self.value_to_metric = read_flag(map)?,
            "share_threshold" => self.share_threshold = read_flag(map)?,
            "metadata" => self.metadata = Some(map.next_value()?),
            _ => return Ok(false),
        }
        Ok(true)
    }
    fn stray_keys(&mut self) -> &mut Vec<At<StrayKey>> {
        &mut self.stray_keys
    }
}

impl Fields for RateLimitDoc {
    fn read<'de, A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<bool, A::Error> {
        match name {
            "unit" => self.unit = read_text(map)?,
            "requests_per_unit" => self.requests_per_unit = Some(map.next_value()?),
            "unit_multiplier" => self.unit_multiplier = Some(map.next_value()?),
            "algorithm" => self.algorithm = read_text(map)?,
            "burst" => self.burst = Some(map.next_value()?),
            "unlimited" => {
                let flag: At<Option<bool>> = map.next_value()?;
                self.unlimited = Some(At {
                    value: flag.value.unwrap_or(false),
                    referenced: flag.referenced,
                    defined: flag.defined,
                });
            }
            "name" => self.name = read_text(map)?,
            "replaces" => self.replaces = read_list(map)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
    fn stray_keys(&mut self) -> &mut Vec<At<StrayKey>> {
        &mut self.stray_keys
    }
}

impl Fields for ReplaceDoc {
    fn read<'de, A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<bool, A::Error> {
        match name {
            "name" => self.name = read_text(map)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
    fn stray_keys(&mut self) -> &mut Vec<At<StrayKey>> {
        &mut self.stray_keys
    }
}

/// A text field; `key:` with nothing after it reads as absent, like an empty string.
fn read_text<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<At<String>>, A::Error> {
    let text: At<Option<String>> = map.next_value()?;
    Ok(text.value.map(|value| At {
        value,
        referenced: text.referenced,
        defined: text.defined,
    }))
}

/// A boolean field; null reads as false.
fn read_flag<'de, A: MapAccess<'de>>(map: &mut A) -> Result<bool, A::Error> {
    Ok(map.next_value::<Option<bool>>()?.unwrap_or(false))
}

/// A list field; null reads as an empty list.
fn read_list<'de, T: Fields, A: MapAccess<'de>>(map: &mut A) -> Result<Vec<At<Item<T>>>, A::Error> {
    Ok(map
        .next_value::<Option<Vec<At<Item<T>>>>>()?
        .unwrap_or_default())
}

impl<'de> Deserialize<'de> for RateLimitsDoc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RateLimitsVisitor;
        impl<'de> Visitor<'de> for RateLimitsVisitor {
            type Value = RateLimitsDoc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map or a list of maps")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RateLimitsDoc, A::Error> {
                read_fields(map).map(|doc| RateLimitsDoc::One(Box::new(doc)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RateLimitsDoc, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(RateLimitsDoc::List(items))
            }
        }
        deserializer.deserialize_any(RateLimitsVisitor)
    }
}

impl<'de, T: Fields> Deserialize<'de> for Item<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor<T>(PhantomData<T>);
        impl<'de, T: Fields> Visitor<'de> for ItemVisitor<T> {
            type Value = Item<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list item")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item<T>, A::Error> {
                read_fields(map).map(Item::Map)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item<T>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item::NotAMap("a list".into()))
            }
            fn visit_unit<E>(self) -> Result<Item<T>, E> {
                Ok(Item::NotAMap("<nil>".into()))
            }
            fn visit_none<E>(self) -> Result<Item<T>, E> {
                Ok(Item::NotAMap("<nil>".into()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Item<T>, E> {
                Ok(Item::NotAMap(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Item<T>, E> {
                Ok(Item::NotAMap(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Item<T>, E> {
                Ok(Item::NotAMap(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Item<T>, E> {
                Ok(Item::NotAMap(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Item<T>, E> {
                Ok(Item::NotAMap(v.to_string()))
            }
        }
        deserializer.deserialize_any(ItemVisitor(PhantomData))
    }
}

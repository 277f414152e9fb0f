//! Request bodies in the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! which `kubectl create namespace|configmap|secret|serviceaccount|deployment` sends for
//! built-in kinds: the `k8s\0` magic, a `runtime.Unknown` envelope (type meta and the raw
//! object), and the object's message. Each kind is decoded into the JSON the rest of the API
//! works on, against a table of the fields it declares (field numbers from the kinds'
//! `generated.proto`). A field the table does not know is refused with 415 rather than
//! dropped: nothing a client sent is ever lost silently, and JSON stays available for it.

use base64::Engine;
use serde_json::{Map, Value};

/// The four bytes before every protobuf-encoded object.
const MAGIC: &[u8] = b"k8s\0";

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    /// Not a well-formed protobuf message.
    #[error("malformed protobuf body: {0}")]
    Malformed(&'static str),
    /// A kind this server does not decode from protobuf.
    #[error("{0} in protobuf is not served; send it as application/json")]
    Kind(String),
    /// A field the kind's table does not have.
    #[error(
        "{kind}: protobuf field {field} of {message} is not served; send it as application/json"
    )]
    Field {
        /// The object's kind.
        kind: String,
        /// The message the field is in.
        message: &'static str,
        /// Its number.
        field: u64,
    },
}

/// How a field is encoded and shown in JSON.
#[derive(Debug, Clone, Copy)]
enum Ty {
    Str,
    /// Bytes, shown base64-encoded (as JSON shows `[]byte`).
    Bytes,
    Int,
    Bool,
    /// `metav1.Time`: seconds and nanos; shown RFC 3339, or null when unset.
    Time,
    Msg(&'static Schema),
    MapStr,
    MapBytes,
    /// Read and dropped (an object's `status`, which a create does not set).
    Ignored,
}

#[derive(Debug)]
struct Field {
    num: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
    /// A pointer field in Go: set means set, zero included. Other scalars are always encoded
    /// and mean "unset" at their zero value (JSON's `omitempty`).
    keep_zero: bool,
}

#[derive(Debug)]
struct Schema {
    name: &'static str,
    fields: &'static [Field],
}

const fn f(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: false,
        keep_zero: false,
    }
}

/// A Go pointer field (`*int32`, `*bool`): its zero value is a value.
const fn p(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: false,
        keep_zero: true,
    }
}

const fn list(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: true,
        keep_zero: false,
    }
}

static TYPE_META: Schema = Schema {
    name: "TypeMeta",
    fields: &[f(1, "apiVersion", Ty::Str), f(2, "kind", Ty::Str)],
};
static OBJECT_META: Schema = Schema {
    name: "ObjectMeta",
    fields: &[
        f(1, "name", Ty::Str),
        f(2, "generateName", Ty::Str),
        f(3, "namespace", Ty::Str),
        f(4, "selfLink", Ty::Str),
        f(5, "uid", Ty::Str),
        f(6, "resourceVersion", Ty::Str),
        f(7, "generation", Ty::Int),
        f(8, "creationTimestamp", Ty::Time),
        f(11, "labels", Ty::MapStr),
        f(12, "annotations", Ty::MapStr),
        list(14, "finalizers", Ty::Str),
    ],
};
static LOCAL_REF: Schema = Schema {
    name: "LocalObjectReference",
    fields: &[f(1, "name", Ty::Str)],
};
static NAMESPACE_SPEC: Schema = Schema {
    name: "NamespaceSpec",
    fields: &[list(1, "finalizers", Ty::Str)],
};
static NAMESPACE: Schema = Schema {
    name: "Namespace",
    fields: &[
        f(1, "metadata", Ty::Msg(&OBJECT_META)),
        f(2, "spec", Ty::Msg(&NAMESPACE_SPEC)),
        f(3, "status", Ty::Ignored),
    ],
};
static CONFIG_MAP: Schema = Schema {
    name: "ConfigMap",
    fields: &[
        f(1, "metadata", Ty::Msg(&OBJECT_META)),
        f(2, "data", Ty::MapStr),
        f(3, "binaryData", Ty::MapBytes),
        p(4, "immutable", Ty::Bool),
    ],
};
static SECRET: Schema = Schema {
    name: "Secret",
    fields: &[
        f(1, "metadata", Ty::Msg(&OBJECT_META)),
        f(2, "data", Ty::MapBytes),
        f(3, "type", Ty::Str),
        f(4, "stringData", Ty::MapStr),
        p(5, "immutable", Ty::Bool),
    ],
};
static SERVICE_ACCOUNT: Schema = Schema {
    name: "ServiceAccount",
    fields: &[
        f(1, "metadata", Ty::Msg(&OBJECT_META)),
        list(3, "imagePullSecrets", Ty::Msg(&LOCAL_REF)),
        p(4, "automountServiceAccountToken", Ty::Bool),
    ],
};
static LABEL_SELECTOR: Schema = Schema {
    name: "LabelSelector",
    fields: &[f(1, "matchLabels", Ty::MapStr)],
};
static RESOURCES: Schema = Schema {
    name: "ResourceRequirements",
    fields: &[],
};
static CONTAINER_PORT: Schema = Schema {
    name: "ContainerPort",
    fields: &[
        f(1, "name", Ty::Str),
        f(2, "hostPort", Ty::Int),
        f(3, "containerPort", Ty::Int),
        f(4, "protocol", Ty::Str),
        f(5, "hostIP", Ty::Str),
    ],
};
static CONTAINER: Schema = Schema {
    name: "Container",
    fields: &[
        f(1, "name", Ty::Str),
        f(2, "image", Ty::Str),
        list(3, "command", Ty::Str),
        list(4, "args", Ty::Str),
        f(5, "workingDir", Ty::Str),
        list(6, "ports", Ty::Msg(&CONTAINER_PORT)),
        f(8, "resources", Ty::Msg(&RESOURCES)),
        f(13, "terminationMessagePath", Ty::Str),
        f(14, "imagePullPolicy", Ty::Str),
        f(16, "stdin", Ty::Bool),
        f(17, "stdinOnce", Ty::Bool),
        f(18, "tty", Ty::Bool),
        f(20, "terminationMessagePolicy", Ty::Str),
    ],
};
static POD_SPEC: Schema = Schema {
    name: "PodSpec",
    fields: &[
        list(2, "containers", Ty::Msg(&CONTAINER)),
        f(3, "restartPolicy", Ty::Str),
        f(6, "dnsPolicy", Ty::Str),
        f(8, "serviceAccountName", Ty::Str),
        f(9, "serviceAccount", Ty::Str),
        f(10, "nodeName", Ty::Str),
        f(11, "hostNetwork", Ty::Bool),
        f(12, "hostPID", Ty::Bool),
        f(13, "hostIPC", Ty::Bool),
        f(16, "hostname", Ty::Str),
        f(17, "subdomain", Ty::Str),
        f(19, "schedulerName", Ty::Str),
        f(24, "priorityClassName", Ty::Str),
    ],
};
static POD_TEMPLATE: Schema = Schema {
    name: "PodTemplateSpec",
    fields: &[
        f(1, "metadata", Ty::Msg(&OBJECT_META)),
        f(2, "spec", Ty::Msg(&POD_SPEC)),
    ],
};
static STRATEGY: Schema = Schema {
    name: "DeploymentStrategy",
    fields: &[f(1, "type", Ty::Str)],
};
static DEPLOYMENT_SPEC: Schema = Schema {
    name: "DeploymentSpec",
    fields: &[
        p(1, "replicas", Ty::Int),
        f(2, "selector", Ty::Msg(&LABEL_SELECTOR)),
        f(3, "template", Ty::Msg(&POD_TEMPLATE)),
        f(4, "strategy", Ty::Msg(&STRATEGY)),
        f(5, "minReadySeconds", Ty::Int),
        p(6, "revisionHistoryLimit", Ty::Int),
        f(7, "paused", Ty::Bool),
        p(9, "progressDeadlineSeconds", Ty::Int),
    ],
};
static DEPLOYMENT: Schema = Schema {
    name: "Deployment",
    fields: &[
        f(1, "metadata", Ty::Msg(&OBJECT_META)),
        f(2, "spec", Ty::Msg(&DEPLOYMENT_SPEC)),
        f(3, "status", Ty::Ignored),
    ],
};

/// The schema of a kind served in protobuf.
fn schema_of(api_version: &str, kind: &str) -> Option<&'static Schema> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => &NAMESPACE,
        ("v1", "ConfigMap") => &CONFIG_MAP,
        ("v1", "Secret") => &SECRET,
        ("v1", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("apps/v1", "Deployment") => &DEPLOYMENT,
        _ => return None,
    })
}

/// Decodes a protobuf request body into the object as JSON.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or(ProtoError::Malformed("no k8s magic prefix"))?;
    // runtime.Unknown: typeMeta (1), raw (2), contentEncoding (3), contentType (4).
    let (mut type_meta, mut raw) = (Map::new(), None);
    let mut r = Reader(rest);
    while !r.0.is_empty() {
        let (num, wire) = r.key()?;
        match (num, r.value(wire)?) {
            (1, Wire::Len(b)) => type_meta = message(b, &TYPE_META, "")?,
            (2, Wire::Len(b)) => raw = Some(b),
            (3 | 4, Wire::Len(_)) => {}
            _ => return Err(ProtoError::Malformed("not a runtime.Unknown envelope")),
        }
    }
    let raw = raw.ok_or(ProtoError::Malformed("the envelope has no object"))?;
    let api_version = type_meta
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = type_meta
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let schema = schema_of(api_version, kind)
        .ok_or_else(|| ProtoError::Kind(format!("{api_version} {kind}")))?;
    let mut object = message(raw, schema, kind)?;
    object.insert("apiVersion".into(), Value::from(api_version));
    object.insert("kind".into(), Value::from(kind));
    Ok(Value::Object(object))
}

enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .0
                .split_first()
                .ok_or(ProtoError::Malformed("truncated varint"))?;
            self.0 = rest;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(ProtoError::Malformed("varint too long"))
    }

    fn key(&mut self) -> Result<(u64, u64), ProtoError> {
        let key = self.varint()?;
        Ok((key >> 3, key & 7))
    }

    fn value(&mut self, wire: u64) -> Result<Wire<'a>, ProtoError> {
        match wire {
            0 => Ok(Wire::Varint(self.varint()?)),
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| ProtoError::Malformed("length out of range"))?;
                if len > self.0.len() {
                    return Err(ProtoError::Malformed("truncated field"));
                }
                let (bytes, rest) = self.0.split_at(len);
                self.0 = rest;
                Ok(Wire::Len(bytes))
            }
            _ => Err(ProtoError::Malformed("unsupported wire type")),
        }
    }
}

fn message(
    bytes: &[u8],
    schema: &'static Schema,
    kind: &str,
) -> Result<Map<String, Value>, ProtoError> {
    let mut out = Map::new();
    let mut r = Reader(bytes);
    while !r.0.is_empty() {
        let (num, wire) = r.key()?;
        let field =
            schema
                .fields
                .iter()
                .find(|f| f.num == num)
                .ok_or_else(|| ProtoError::Field {
                    kind: kind.to_owned(),
                    message: schema.name,
                    field: num,
                })?;
        let wire = r.value(wire)?;
        if matches!(field.ty, Ty::Ignored) {
            continue;
        }
        let value = scalar(wire, field.ty, kind)?;
        let zero = match &value.1 {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_i64() == Some(0),
            _ => false,
        };
        if zero && !field.keep_zero && !field.repeated {
            continue;
        }
        match field.ty {
            Ty::MapStr | Ty::MapBytes => {
                let (k, v) = value;
                let entry = out
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = entry {
                    m.insert(k, v);
                }
            }
            _ if field.repeated => {
                let entry = out
                    .entry(field.name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(a) = entry {
                    a.push(value.1);
                }
            }
            _ => {
                out.insert(field.name.to_owned(), value.1);
            }
        }
    }
    Ok(out)
}

/// One field's value (with its key, for map entries).
fn scalar(w: Wire<'_>, ty: Ty, kind: &str) -> Result<(String, Value), ProtoError> {
    let text = |b: &[u8]| {
        String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Malformed("a string is not UTF-8"))
    };
    Ok((
        String::new(),
        match (ty, w) {
            (Ty::Str, Wire::Len(b)) => Value::from(text(b)?),
            (Ty::Bytes, Wire::Len(b)) => {
                Value::from(base64::engine::general_purpose::STANDARD.encode(b))
            }
            // int32/int64 as two's complement varints.
            #[allow(clippy::cast_possible_wrap)]
            (Ty::Int, Wire::Varint(v)) => Value::from(v as i64),
            (Ty::Bool, Wire::Varint(v)) => Value::from(v != 0),
            (Ty::Time, Wire::Len(b)) => {
                let t = message(b, &TIME, kind)?;
                match t.get("seconds").and_then(Value::as_i64) {
                    Some(s) if s > 0 => Value::from(egress_store::rfc3339_from_unix(
                        u64::try_from(s).unwrap_or_default(),
                    )),
                    _ => Value::Null,
                }
            }
            (Ty::Msg(schema), Wire::Len(b)) => Value::Object(message(b, schema, kind)?),
            (Ty::MapStr | Ty::MapBytes, Wire::Len(b)) => {
                let entry_ty = if matches!(ty, Ty::MapStr) {
                    &MAP_STR
                } else {
                    &MAP_BYTES
                };
                let e = message(b, entry_ty, kind)?;
                let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
                let value = e.get("value").cloned().unwrap_or_else(|| Value::from(""));
                return Ok((key.to_owned(), value));
            }
            _ => return Err(ProtoError::Malformed("a field has the wrong wire type")),
        },
    ))
}

static TIME: Schema = Schema {
    name: "Time",
    fields: &[f(1, "seconds", Ty::Int), f(2, "nanos", Ty::Int)],
};
static MAP_STR: Schema = Schema {
    name: "map entry",
    fields: &[f(1, "key", Ty::Str), f(2, "value", Ty::Str)],
};
static MAP_BYTES: Schema = Schema {
    name: "map entry",
    fields: &[f(1, "key", Ty::Str), f(2, "value", Ty::Bytes)],
};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn field(num: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![
            u8::try_from(num << 3 | 2).unwrap(),
            u8::try_from(bytes.len()).unwrap(),
        ];
        out.extend_from_slice(bytes);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = field(1, api_version.as_bytes());
        tm.extend(field(2, kind.as_bytes()));
        let mut body = MAGIC.to_vec();
        body.extend(field(1, &tm));
        body.extend(field(2, raw));
        body
    }

    #[test]
    fn a_config_map_decodes_and_unknown_fields_are_refused() {
        let mut entry = field(1, b"mode");
        entry.extend(field(2, b"ALLOW_ANY"));
        let mut raw = field(1, &field(1, b"mesh"));
        raw.extend(field(2, &entry));
        let v = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mesh"}, "data": {"mode": "ALLOW_ANY"}})
        );
        let mut raw = field(1, &field(1, b"mesh"));
        raw.extend(field(9, b"x"));
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", &raw)).unwrap_err(),
            ProtoError::Field {
                kind: "ConfigMap".into(),
                message: "ConfigMap",
                field: 9
            }
        );
        assert!(matches!(
            decode(&envelope("v1", "Pod", &[])).unwrap_err(),
            ProtoError::Kind(_)
        ));
        assert!(decode(b"{}").is_err());
        assert!(decode(&[b'k', b'8', b's', 0, 0x0a, 0x7f]).is_err());
    }
}

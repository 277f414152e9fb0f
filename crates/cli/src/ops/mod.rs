//! One module per subcommand.

pub mod analyze;
pub mod analyze_config;
pub mod analyze_policy;
pub mod apply;
pub mod delete;
pub mod exec;
pub mod get;
pub mod label;
pub mod logs;
pub mod up;
pub mod validate;

use egress_model::KindInfo;
use egress_store::ObjectKey;

/// The store key of an object of `info` called `name`.
pub fn key_for(info: &KindInfo, namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey::new(
        info.group,
        info.kind,
        if info.namespaced { namespace } else { None },
        name,
    )
}

/// `kind.group/name` as kubectl prints it after a write (`serviceentry.networking.istio.io/cnn`).
pub fn written_name(info: &KindInfo, name: &str) -> String {
    format!("{}/{name}", info.qualified_singular())
}

/// `plural.group` as the API server names a resource in errors (`serviceentries.networking.istio.io`).
pub fn resource_name(info: &KindInfo) -> String {
    if info.group.is_empty() {
        info.plural.to_owned()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

//! Security kinds (`security.istio.io`): AuthorizationPolicy and PeerAuthentication.

use serde::{Deserialize, Serialize};

/// AuthorizationPolicy spec (`security.v1beta1.AuthorizationPolicy`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicy {}

/// PeerAuthentication spec (`security.v1beta1.PeerAuthentication`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerAuthentication {}

//! DestinationRule (`networking.istio.io`): subsets and traffic policy for a destination.

use serde::{Deserialize, Serialize};

/// DestinationRule spec (`networking.v1alpha3.DestinationRule`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRule {}

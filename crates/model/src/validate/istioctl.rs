//! `istioctl validate`'s own checks on Kubernetes Services, in its words: port names that do
//! not follow Istio's `<protocol>[-<suffix>]` convention, unnamed ports, and an `appProtocol`
//! Istio cannot select. Services in Istio's namespace are not checked. istioctl fails on these
//! findings; here they are warnings, since the API server accepts such Services and egress
//! applies them.

use k8s_openapi::api::core::v1::Service;

use crate::diag::{Report, idx, join};
use crate::validate::common::Protocol;

/// Where istioctl points for the port naming and label requirements.
const REQUIREMENTS_URL: &str = "https://istio.io/latest/docs/ops/deployment/requirements/";
/// Where istioctl points for protocol selection.
const PROTOCOL_SELECTION_URL: &str =
    "https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/";
/// istioctl's default Istio namespace, whose objects it leaves alone.
const ISTIO_NAMESPACE: &str = "istio-system";
/// The Service's ports as istioctl judges them: UDP ports are skipped; a port with an
/// `appProtocol` must name a protocol Istio knows; any other port must be named, and the part
/// of its name before the first `-` must be such a protocol.
pub fn service_ports(svc: &Service, r: &mut Report) {
    let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
    if ns == ISTIO_NAMESPACE {
        return;
    }
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    let id = format!("{name}/{ns}/:");
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_deref());
    for (i, p) in ports.unwrap_or_default().iter().enumerate() {
        let path = idx("spec.ports", i);
        if p.protocol
            .as_deref()
            .is_some_and(|proto| proto.eq_ignore_ascii_case("UDP"))
        {
            continue;
        }
        if let Some(ap) = &p.app_protocol {
            if Protocol::parse(ap) == Protocol::Unsupported {
                r.warn(
                    join(&path, "appProtocol"),
                    format!("service {id:?} doesn't follow Istio protocol selection. This is not recommended, See {PROTOCOL_SELECTION_URL}"),
                );
            }
            continue;
        }
        match &p.name {
            None => r.warn(
                &path,
                format!("service {id:?} has an unnamed port. This is not recommended, See {REQUIREMENTS_URL}"),
            ),
            Some(port) => {
                let prefix = port.split_once('-').map_or(port.as_str(), |(p, _)| p);
                if Protocol::parse(prefix) == Protocol::Unsupported {
                    r.warn(
                        join(&path, "name"),
                        format!("service {id:?} port {port:?} does not follow the Istio naming convention. See {REQUIREMENTS_URL}"),
                    );
                }
            }
        }
    }
}

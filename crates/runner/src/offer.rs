//! The one rule for whether a newly compiled configuration reaches a running proxy: it does
//! when it differs from what the proxy serves in anything but its version
//! ([`SameContent`], whose implementations name every field of the snapshot). Every gateway and
//! sidecar, whatever runs it, takes the decision here and nowhere else.

use std::sync::Arc;

use egress_compile::snapshot::SameContent;
use tokio::sync::watch;

/// Offers `next` to the proxy reading `snapshots`: swapped in (and the proxy woken) when its
/// content differs from the current one, left out when only the version differs. Returns
/// whether it was swapped in.
pub fn offer<S: SameContent>(snapshots: &watch::Sender<Arc<S>>, next: &Arc<S>) -> bool {
    snapshots.send_if_modified(|current| {
        if current.same_content(next) {
            false
        } else {
            *current = Arc::clone(next);
            true
        }
    })
}

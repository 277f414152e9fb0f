//! `egress up`: the local cluster. Until the gateway and add-on land, it reports the store it
//! would run on and the plan, and exits successfully.

use egress_store::Store;

use crate::{Io, OpError};

/// Print what the local cluster is and what it will run.
pub fn run(store: &Store, io: &mut Io<'_>) -> Result<(), OpError> {
    let listed = store.list("", "Namespace", None)?;
    writeln!(io.out, "egress local cluster")?;
    writeln!(io.out, "  store:      {}", store.dir().display())?;
    writeln!(io.out, "  namespaces: {}", listed.items.len())?;
    writeln!(io.out, "  resourceVersion: {}", listed.resource_version)?;
    writeln!(io.out)?;
    writeln!(
        io.out,
        "The store and the kubectl-style commands work now (apply, get, delete, label, validate)."
    )?;
    writeln!(
        io.out,
        "Not built yet, so nothing is started: the egress gateway data plane, the managed"
    )?;
    writeln!(
        io.out,
        "add-on reconciler (egress mesh ...), sidecars and the stand-in external hosts."
    )?;
    Ok(())
}

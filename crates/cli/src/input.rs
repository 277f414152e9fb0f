//! Reading `-f FILE|DIR|-` arguments into named texts, as kubectl does.

use std::io::Read;
use std::path::Path;

use crate::error::OpError;

/// The Istio `curl` sample, served for its well-known URL so the seed works offline.
pub const CURL_SAMPLE: &str = include_str!("../../../samples/curl.yaml");

pub use egress_runner::files::Source;

/// Read every `-f` argument: files, directories (their `.yaml`, `.yml` and `.json` files in name
/// order; recursively with `recursive`), `-` for standard input, and the Istio curl sample URL.
pub fn read_sources(
    args: &[String],
    recursive: bool,
    stdin: &mut dyn Read,
) -> Result<Vec<Source>, OpError> {
    let mut out = Vec::new();
    for arg in args {
        if arg == "-" {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|source| OpError::Read {
                    path: "-".into(),
                    source,
                })?;
            out.push(Source {
                name: "-".into(),
                text,
            });
        } else if arg.starts_with("http://") || arg.starts_with("https://") {
            if arg.ends_with("/samples/curl/curl.yaml")
                || arg.ends_with("/samples/sleep/sleep.yaml")
            {
                out.push(Source {
                    name: arg.clone(),
                    text: CURL_SAMPLE.to_owned(),
                });
            } else {
                return Err(OpError::Usage(format!(
                    "unable to read URL {arg:?}: egress reads manifests from files only (download it and pass the file)"
                )));
            }
        } else {
            out.extend(
                egress_runner::files::read_manifests(Path::new(arg), arg, recursive).map_err(
                    |e| OpError::Read {
                        path: e.path,
                        source: e.source,
                    },
                )?,
            );
        }
    }
    Ok(out)
}

//! SLSA provenance in cosign's attestations: DSSE envelopes
//! (`application/vnd.dsse.envelope.v1+json`) whose payload is an in-toto
//! Statement. An attestation counts when one trusted key signed its PAE, its
//! subject names the image's digest, its predicate type is SLSA provenance
//! v1 and its builder is allowed.
use base64::Engine as _;
use serde::Deserialize;
use sigstore::crypto::{CosignVerificationKey, Signature};

/// The media type of a DSSE envelope layer.
pub const MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The predicate type of SLSA provenance v1.
pub const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const IN_TOTO: &str = "application/vnd.in-toto+json";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: String,
    payload: String,
    signatures: Vec<Sig>,
}

#[derive(Deserialize)]
struct Sig {
    sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(default)]
    subject: Vec<Subject>,
    #[serde(default)]
    predicate_type: String,
    #[serde(default)]
    predicate: serde_json::Value,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// DSSE's pre-authentication encoding: what the signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Whether one of `envelopes` is SLSA v1 provenance for `digest`, signed by
/// one of `keys`, from one of `builders`; why not otherwise (the most
/// telling reason seen).
pub fn provenance<'a>(
    envelopes: impl IntoIterator<Item = &'a [u8]>,
    keys: &[CosignVerificationKey],
    digest: &str,
    builders: &[String],
) -> Result<(), String> {
    let want = digest.strip_prefix("sha256:").unwrap_or(digest);
    let mut why = "no SLSA provenance v1 attestation".to_string();
    for raw in envelopes {
        let Ok(env) = serde_json::from_slice::<Envelope>(raw) else {
            continue;
        };
        if env.payload_type != IN_TOTO {
            continue;
        }
        let Ok(payload) = base64::engine::general_purpose::STANDARD.decode(&env.payload) else {
            continue;
        };
        let Ok(st) = serde_json::from_slice::<Statement>(&payload) else {
            continue;
        };
        if st.predicate_type != SLSA_V1 {
            continue;
        }
        let signed = env.signatures.iter().any(|s| {
            keys.iter().any(|k| {
                k.verify_signature(
                    Signature::Base64Encoded(s.sig.as_bytes()),
                    &pae(&env.payload_type, &payload),
                )
                .is_ok()
            })
        });
        if !signed {
            why = "a SLSA provenance attestation, not signed by a trusted key".into();
            continue;
        }
        if !st
            .subject
            .iter()
            .any(|s| s.digest.get("sha256").map(String::as_str) == Some(want))
        {
            why = format!("a signed SLSA provenance attestation whose subject is not {digest}");
            continue;
        }
        let builder = st
            .predicate
            .pointer("/runDetails/builder/id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        if !builders.iter().any(|b| b == builder) {
            why = format!("provenance from builder {builder:?}, which the config does not allow");
            continue;
        }
        return Ok(());
    }
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_dsse_v1() {
        // The example of the DSSE specification's protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn an_unparseable_or_foreign_envelope_is_no_provenance() {
        let junk: [&[u8]; 2] = [b"{}", b"not json"];
        assert_eq!(
            provenance(junk, &[], "sha256:00", &[]).unwrap_err(),
            "no SLSA provenance v1 attestation"
        );
    }
}

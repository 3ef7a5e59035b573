//! KYC documents: base64 images and PDFs, checked by their content, sealed at rest.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use crate::error::ApiError;
use crate::http::validate::{verdict, Fields, Rule};

/// Government ID document types (Bond's list).
pub const GOVERNMENT_ID_TYPES: &[&str] = &[
    "drivers_license",
    "passport",
    "state_id",
    "passport_card",
    "permanent_resident_card",
    "work_permit",
    "visa",
];
/// Proof-of-address document types.
pub const PROOF_OF_ADDRESS_TYPES: &[&str] = &["utility_bill", "property_tax_bill"];

/// A file name with one of the accepted extensions (any case).
pub const FILE_NAME: Rule = Rule {
    pattern: r"^[A-Za-z0-9 ._-]{1,100}\.([jJ][pP][eE]?[gG]|[pP][nN][gG]|[hH][eE][iI][cC]|[pP][dD][fF])$",
    message: "Must be a file name ending in .jpg, .jpeg, .png, .heic or .pdf.",
};
/// Standard base64.
pub const BASE64: Rule = Rule {
    pattern: r"^[A-Za-z0-9+/]+={0,2}$",
    message: "Not valid base64.",
};

/// One decoded image or PDF.
#[derive(Debug)]
pub struct Document {
    /// `government_id`, `proof_of_address` or `social_security_card`.
    pub kind: &'static str,
    /// Document type within the kind.
    pub doc_type: Option<String>,
    /// `front` or `back`.
    pub side: &'static str,
    /// Detected from the bytes.
    pub content_type: &'static str,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// The content type of `bytes` by its magic numbers: JPEG, PNG, HEIC or PDF; `None` for
/// anything else, whatever the file name says.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.len() >= 12
        && &bytes[4..8] == b"ftyp"
        && matches!(
            &bytes[8..12],
            b"heic" | b"heix" | b"heim" | b"heis" | b"mif1" | b"msf1"
        )
    {
        Some("image/heic")
    } else {
        None
    }
}

fn image(
    f: &mut Fields<'_>,
    field: &'static str,
    required: bool,
    max_bytes: usize,
) -> Option<(&'static str, Vec<u8>)> {
    let raw = f.raw(field);
    let name = f.name(field);
    let Some(v) = raw else {
        if required {
            f.errors.push(crate::error::FieldError::missing(name));
        }
        return None;
    };
    let mut inner = match Fields::new(v, &name) {
        Ok(i) => i,
        Err(e) => {
            f.errors.push(e);
            return None;
        }
    };
    let _file_name = inner.string("file_name", true, &FILE_NAME);
    let data = inner.string("image", true, &BASE64);
    let mut errors = inner.finish();
    let mut out = None;
    if let Some(data) = data {
        match STANDARD.decode(data.as_bytes()) {
            Err(_) => errors.push(crate::error::FieldError::invalid(
                format!("{name}.image"),
                "Not valid base64.",
            )),
            Ok(bytes) if bytes.len() > max_bytes => errors.push(crate::error::FieldError::invalid(
                format!("{name}.image"),
                format!(
                    "Larger than the {} limit (kyc.document_max_bytes).",
                    bytesize::ByteSize(max_bytes as u64)
                ),
            )),
            Ok(bytes) => match sniff(&bytes) {
                Some(ct) => out = Some((ct, bytes)),
                None => errors.push(crate::error::FieldError::invalid(
                    format!("{name}.image"),
                    "The content is not a JPEG, PNG, HEIC or PDF file.",
                )),
            },
        }
    }
    f.errors.extend(errors);
    out
}

/// Reads a documents body: any of `government_id`, `proof_of_address`,
/// `social_security_card`, at least one, every problem listed.
pub fn parse(body: &Value, max_bytes: usize) -> Result<Vec<Document>, ApiError> {
    const CODE: &str = "document_post_schema";
    let mut top = Fields::new(body, "").map_err(|e| ApiError::Validation {
        code: CODE,
        fields: vec![e],
    })?;
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for kind in ["government_id", "proof_of_address", "social_security_card"] {
        let Some(v) = top.raw(kind) else { continue };
        let mut f = match Fields::new(v, kind) {
            Ok(f) => f,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let doc_type = match kind {
            "government_id" => f.one_of("type", true, GOVERNMENT_ID_TYPES),
            "proof_of_address" => f.one_of("type", true, PROOF_OF_ADDRESS_TYPES),
            _ => None,
        };
        if kind == "government_id" {
            f.one_of("country", true, super::rules::COUNTRIES);
        }
        let front = image(&mut f, "front_image", true, max_bytes);
        let back = image(&mut f, "back_image", false, max_bytes);
        errors.extend(f.finish());
        for (side, img) in [("front", front), ("back", back)] {
            if let Some((content_type, bytes)) = img {
                docs.push(Document {
                    kind,
                    doc_type: doc_type.clone(),
                    side,
                    content_type,
                    bytes,
                });
            }
        }
    }
    errors.splice(0..0, top.finish());
    if errors.is_empty() && docs.is_empty() {
        errors.push(crate::error::FieldError::invalid(
            "body",
            "Send at least one of government_id, proof_of_address, social_security_card.",
        ));
    }
    verdict(CODE, errors)?;
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_decides_the_type_not_the_name() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff(b"%PDF-1.7"), Some("application/pdf"));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0"), Some("image/heic"));
        assert_eq!(sniff(b"MZ\x90\0 an executable"), None);
        assert_eq!(sniff(b"GIF89a"), None);
    }

    #[test]
    fn every_bad_field_is_listed() {
        let body = serde_json::json!({
            "government_id": {"type": "library_card", "front_image": {"file_name": "id.exe", "image": "TVqQ"}},
            "extra": 1
        });
        let Err(ApiError::Validation { code, fields }) = parse(&body, 1024) else {
            panic!("expected a validation error")
        };
        assert_eq!(code, "document_post_schema");
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        for expected in [
            "extra",
            "government_id.type",
            "government_id.country",
            "government_id.front_image.file_name",
            "government_id.front_image.image",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
    }
}

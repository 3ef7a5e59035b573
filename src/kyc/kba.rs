//! The verification-kba body: `{"kba_responses": [{"question_id", "choice_id"}]}`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ApiError;
use crate::http::validate::{verdict, Fields, Rule};

/// Question and choice ids.
pub const ID: Rule = Rule {
    pattern: r"^[A-Za-z0-9_-]{1,64}$",
    message: "Not a valid id.",
};

/// Rounds a customer gets before KBA fails.
pub const MAX_ROUNDS: i32 = 3;

/// Reads the answers as question id → choice id.
pub fn parse(body: &Value) -> Result<BTreeMap<String, String>, ApiError> {
    const CODE: &str = "kba_post_schema";
    let mut f = Fields::new(body, "").map_err(|e| ApiError::Validation {
        code: CODE,
        fields: vec![e],
    })?;
    let mut answers = BTreeMap::new();
    let mut errors = Vec::new();
    if let Some(items) = f.array("kba_responses", true, 1, 4) {
        for (i, item) in items.iter().enumerate() {
            let mut r = match Fields::new(item, &format!("kba_responses[{i}]")) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let q = r.string("question_id", true, &ID);
            let c = r.string("choice_id", true, &ID);
            if let (Some(q), Some(c)) = (q, c) {
                if answers.insert(q, c).is_some() {
                    r.fail("question_id", "Answered twice.");
                }
            }
            errors.extend(r.finish());
        }
    }
    errors.splice(0..0, f.finish());
    verdict(CODE, errors)?;
    Ok(answers)
}

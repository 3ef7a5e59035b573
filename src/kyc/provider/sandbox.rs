//! The sandbox provider: deterministic rules, so a developer can reach every path.
//!
//! | input | outcome |
//! |---|---|
//! | SSN `000-00-0000` | manual review (`under_review`) |
//! | SSN `888-88-8888` | the provider times out (`timeout`) |
//! | SSN `999-99-1111` | OFAC hit (`failed`) |
//! | SSN `333-33-3333` | a government ID is required (`document_required`) |
//! | SSN `222-22-2222` | a proof of address is required (`document_required`) |
//! | first name `xyz` (any case) | KBA (`kba triggered`), as in Bond's sandbox |
//! | anything else | `passed` |
//!
//! KBA questions are built from the customer's own data (birth year, month and day; street,
//! city and postal code of the primary address), so a test or a demo knows the right answers.
//! Each round asks different questions with fresh ids. Documents always pass review.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::{
    answers_match, Applicant, Decision, IdentityProvider, KbaChoice, KbaQuestion, Outcome,
    ProviderError, Reasons,
};

/// The sandbox provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sandbox;

fn reasons(bureau: &str, ofac: &str) -> Reasons {
    [
        ("ofac", ofac),
        ("bureau", bureau),
        ("ip", "passed"),
        ("phone", "passed"),
        ("email", "passed"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..4])
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const STREETS: [&str; 5] = [
    "12 Acacia Avenue",
    "221 Baker Street",
    "742 Evergreen Terrace",
    "31 Spooner Street",
    "4 Privet Drive",
];
const CITIES: [&str; 5] = [
    "Springfield",
    "Shelbyville",
    "Riverton",
    "Lakewood",
    "Fairview",
];
const ZIPS: [&str; 5] = ["10001", "94105", "60601", "30301", "73301"];

/// (question, right answer, decoys) candidates from the applicant's data.
fn facts(a: &Applicant) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    let year: i32 = a.dob.get(0..4).and_then(|y| y.parse().ok()).unwrap_or(1980);
    let month: usize = a.dob.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    let day: u32 = a.dob.get(8..10).and_then(|d| d.parse().ok()).unwrap_or(1);
    out.push((
        "In which year were you born?".to_owned(),
        year.to_string(),
        [-3, -1, 2, 4]
            .iter()
            .map(|d| (year + d).to_string())
            .collect(),
    ));
    if let Some(addr) = &a.address {
        out.push((
            "Which of these streets is associated with your address?".to_owned(),
            addr.street.clone(),
            STREETS.iter().map(|s| (*s).to_owned()).collect(),
        ));
        out.push((
            "In which city have you lived?".to_owned(),
            addr.city.clone(),
            CITIES.iter().map(|s| (*s).to_owned()).collect(),
        ));
        out.push((
            "Which postal code is associated with your address?".to_owned(),
            addr.zip_code.clone(),
            ZIPS.iter().map(|s| (*s).to_owned()).collect(),
        ));
    }
    out.push((
        "In which month were you born?".to_owned(),
        MONTHS
            .get(month.wrapping_sub(1))
            .unwrap_or(&"January")
            .to_string(),
        MONTHS.iter().map(|s| (*s).to_owned()).collect(),
    ));
    out.push((
        "On which day of the month were you born?".to_owned(),
        day.to_string(),
        [3, 9, 17, 26]
            .iter()
            .map(|d: &u32| ((day + d) % 28 + 1).to_string())
            .collect(),
    ));
    out
}

/// Up to four questions for `round`, rotating through the facts so rounds differ.
pub fn questions(reference: &str, a: &Applicant, round: u32) -> Vec<KbaQuestion> {
    let facts = facts(a);
    let n = facts.len();
    let count = n.min(4);
    let start = (round as usize).saturating_sub(1) * 2;
    (0..count)
        .map(|i| {
            let (question, right, decoys) = &facts[(start + i) % n];
            let qid = format!(
                "q_{}",
                short_hash(&[reference, &round.to_string(), question])
            );
            let mut texts = vec![right.clone()];
            for d in decoys {
                if texts.len() == 4 {
                    break;
                }
                if d != right && !texts.contains(d) {
                    texts.push(d.clone());
                }
            }
            // Deterministic order that differs per round.
            texts.sort_by_key(|t| short_hash(&[&qid, t]));
            let choices: Vec<KbaChoice> = texts
                .iter()
                .map(|t| KbaChoice {
                    choice_id: format!("c_{}", short_hash(&[&qid, t])),
                    choice: t.clone(),
                })
                .collect();
            let answer = choices
                .iter()
                .find(|c| &c.choice == right)
                .map(|c| c.choice_id.clone());
            KbaQuestion {
                question_id: qid,
                question: question.clone(),
                choices,
                answer,
            }
        })
        .collect()
}

#[async_trait]
impl IdentityProvider for Sandbox {
    async fn verify(&self, _reference: &str, a: &Applicant) -> Result<Outcome, ProviderError> {
        let (decision, reasons) = match a.ssn.as_str() {
            "000000000" => (Decision::ManualReview, reasons("under_review", "passed")),
            "888888888" => return Err(ProviderError::Timeout),
            "999991111" => (Decision::Failed, reasons("passed", "failed")),
            "333333333" => (
                Decision::Documents(vec!["government_id".into()]),
                reasons("document_required", "passed"),
            ),
            "222222222" => (
                Decision::Documents(vec!["proof_of_address".into()]),
                reasons("document_required", "passed"),
            ),
            _ if a.first_name.eq_ignore_ascii_case("xyz") => {
                (Decision::Kba, reasons("kba triggered", "passed"))
            }
            _ => (Decision::Passed, reasons("passed", "passed")),
        };
        Ok(Outcome { decision, reasons })
    }

    async fn poll(&self, _provider_ref: &str) -> Result<Outcome, ProviderError> {
        Err(ProviderError::Failed(
            "the sandbox decides at once and has nothing to poll".into(),
        ))
    }

    async fn kba_questions(
        &self,
        reference: &str,
        a: &Applicant,
        round: u32,
    ) -> Result<Vec<KbaQuestion>, ProviderError> {
        Ok(questions(reference, a, round))
    }

    async fn check_kba(
        &self,
        _reference: &str,
        questions: &[KbaQuestion],
        answers: &BTreeMap<String, String>,
    ) -> Result<bool, ProviderError> {
        Ok(answers_match(questions, answers))
    }

    async fn review_documents(
        &self,
        _reference: &str,
        _a: &Applicant,
        _documents: &[(String, String)],
    ) -> Result<Outcome, ProviderError> {
        Ok(Outcome {
            decision: Decision::Passed,
            reasons: reasons("passed", "passed"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kyc::customers::Address;

    fn applicant(first: &str, ssn: &str) -> Applicant {
        Applicant {
            first_name: first.into(),
            middle_name: None,
            last_name: Some("Doe".into()),
            dob: "1990-04-15".into(),
            address: Some(Address {
                address_id: "adr_1".into(),
                address_type: "PHYSICAL".into(),
                street: "1 Main Street".into(),
                street2: None,
                city: "Boston".into(),
                state: Some("MA".into()),
                zip_code: "02101".into(),
                country: "US".into(),
                is_primary: true,
            }),
            ssn: ssn.into(),
            phone: "5555550100".into(),
            phone_country_code: "1".into(),
            email: "jane@example.com".into(),
            ip: "203.0.113.7".into(),
        }
    }

    #[tokio::test]
    async fn documented_rules_reach_every_path() {
        let s = Sandbox;
        let d = |first: &str, ssn: &str| {
            let a = applicant(first, ssn);
            async move { s.verify("ref", &a).await.map(|o| o.decision) }
        };
        assert_eq!(d("Jane", "123456789").await.unwrap(), Decision::Passed);
        assert_eq!(d("xyz", "123456789").await.unwrap(), Decision::Kba);
        assert_eq!(
            d("Jane", "000000000").await.unwrap(),
            Decision::ManualReview
        );
        assert!(matches!(
            d("Jane", "888888888").await,
            Err(ProviderError::Timeout)
        ));
        assert_eq!(d("Jane", "999991111").await.unwrap(), Decision::Failed);
        assert_eq!(
            d("Jane", "333333333").await.unwrap(),
            Decision::Documents(vec!["government_id".into()])
        );
        assert_eq!(
            d("Jane", "222222222").await.unwrap(),
            Decision::Documents(vec!["proof_of_address".into()])
        );
    }

    #[test]
    fn kba_answers_come_from_the_customers_data_and_rounds_differ() {
        let a = applicant("xyz", "123456789");
        let r1 = questions("ref", &a, 1);
        let r2 = questions("ref", &a, 2);
        assert_eq!(r1.len(), 4);
        for q in &r1 {
            let right = q
                .choices
                .iter()
                .find(|c| Some(&c.choice_id) == q.answer.as_ref());
            let text = &right.unwrap().choice;
            assert!(
                ["1990", "1 Main Street", "Boston", "02101", "April", "15"]
                    .contains(&text.as_str()),
                "{} → {text}",
                q.question
            );
            assert_eq!(q.choices.len(), 4);
        }
        let ids1: Vec<_> = r1.iter().map(|q| &q.question_id).collect();
        assert!(
            r2.iter().all(|q| !ids1.contains(&&q.question_id)),
            "fresh ids each round"
        );
        assert_ne!(
            r1.iter().map(|q| &q.question).collect::<Vec<_>>(),
            r2.iter().map(|q| &q.question).collect::<Vec<_>>()
        );
    }
}

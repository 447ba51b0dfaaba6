//! Errors as one line: an error and every cause below it, for logs and statuses, since
//! `Display` alone hides the cause that says what went wrong (`error sending request` over
//! `connection refused`).

/// `error: cause: cause of the cause`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrappers often repeat their source's text in their own.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn a_chain_names_every_cause_once() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(chain(&Outer("error sending request", refused)), "error sending request: connection refused");
        let repeated = std::io::Error::other("connection refused");
        assert_eq!(chain(&Outer("connection refused", repeated)), "connection refused");
    }
}

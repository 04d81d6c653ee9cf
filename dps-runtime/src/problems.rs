//! Every problem a client's configuration has, in one error: both clients report their own
//! problem kinds through this one list, so a user sees all of them at once, not the last one.

use std::fmt;

/// Every problem found in a client's configuration, in the order the builder met them; `P` is
/// the client's own problem type. `Display` joins the problems' sentences with `; `.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problems<P> {
    problems: Vec<P>,
}

impl<P> Problems<P> {
    /// An error with these problems; `None` when there is none.
    #[must_use]
    pub fn from_problems(problems: Vec<P>) -> Option<Self> {
        (!problems.is_empty()).then_some(Self { problems })
    }

    /// The problems, at least one.
    #[must_use]
    pub fn problems(&self) -> &[P] {
        &self.problems
    }
}

impl<P: fmt::Display> fmt::Display for Problems<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl<P: fmt::Debug + fmt::Display> std::error::Error for Problems<P> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_problem_is_no_error_and_several_are_joined_in_order() {
        assert_eq!(Problems::<String>::from_problems(Vec::new()), None);
        let error = Problems::from_problems(vec!["the host is empty", "the id is not valid"])
            .expect("two problems");
        assert_eq!(error.problems().len(), 2);
        assert_eq!(error.to_string(), "the host is empty; the id is not valid");
    }
}

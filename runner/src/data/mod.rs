//! Labelled corpus readers (owned by the data-readers work).

//! Tests of route matching.

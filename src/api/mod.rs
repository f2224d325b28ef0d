//! The HTTP APIs. Handlers parse a request into a typed call, call one service function and map the result.

pub mod engine;

//! Fast in-process tests of the request processors (`rmq_broker::testing::Harness`):
//! each test builds a broker core over a temporary store and calls the dispatch with a
//! request, asserting the response code, the remark and the resulting state.

mod admin;
mod admin_reads;
mod client;
mod epoch_cache;
mod lock;
mod maintenance;
mod offsets;
mod pull;
mod query;
mod reply;
mod requests;
mod runtime_info;
mod schedule;
mod send;
mod send_back;
mod transaction;

//! QUERY/UPDATE_CONSUMER_OFFSET and the queue offset queries.

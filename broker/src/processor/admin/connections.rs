//! GET_CONSUMER_CONNECTION_LIST (203) and GET_PRODUCER_CONNECTION_LIST (204): the live
//! clients of a group, learnt from heartbeats.

use std::rc::Rc;

use rmq_core::body::{Connection, ConsumerConnection, ProducerConnection, encode_body};
use rmq_core::remoting::{LanguageCode, RemotingCommand, ResponseCode};

use super::super::{Processed, header, reply, success};
use crate::clients::ClientChannel;
use crate::core_context::CoreContext;

pub fn connection(channel: &ClientChannel) -> Connection {
    Connection {
        client_id: channel.client_id.to_string(),
        client_addr: channel.addr.clone(),
        language: LanguageCode::from_u8(channel.language)
            .unwrap_or_default()
            .name()
            .to_owned(),
        version: channel.version,
    }
}

pub fn consumer_connections(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let group = header(req, req.ext_str("consumerGroup"))?;
    let clients = &core.broker.clients;
    let channels = clients.consumer_channels(group);
    let Some(data) = clients
        .consumer_data(group)
        .filter(|_| !channels.is_empty())
    else {
        let remark = format!("the consumer group[{group}] not online");
        return Err(reply(req, ResponseCode::ConsumerNotOnline, remark));
    };
    let body = ConsumerConnection {
        connection_set: channels.iter().map(connection).collect(),
        subscription_table: data
            .subscription_data_set
            .iter()
            .map(|sub| (sub.topic.clone(), sub.clone()))
            .collect(),
        consume_type: data.consume_type,
        message_model: data.message_model,
        consume_from_where: data.consume_from_where,
    };
    Ok(success(req).with_body(encode_body(&body)))
}

pub fn producer_connections(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let group = header(req, req.ext_str("producerGroup"))?;
    let channels = core.broker.clients.producer_channels(group);
    if channels.is_empty() {
        let remark = format!("the producer group[{group}] not exist");
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    let body = ProducerConnection {
        connection_set: channels.iter().map(connection).collect(),
    };
    Ok(success(req).with_body(encode_body(&body)))
}

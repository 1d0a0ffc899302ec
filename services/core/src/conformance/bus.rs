//! The [`DeliveryBus`](crate::bus::DeliveryBus) suite.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use super::{BusUnderTest, room};
use crate::bus::{BusEvent, Delivery, Subscription};

fn delivery(room_name: &str, seq: u64) -> Delivery {
    Delivery {
        trace: None,
        room: room(room_name),
        seq,
        frame: Bytes::from(format!("{{\"room\":\"{room_name}\",\"seq\":{seq}}}")),
    }
}

async fn next(sub: &mut Subscription) -> Delivery {
    match tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
        Ok(Some(BusEvent::Delivery(d))) => d,
        other => panic!("expected a delivery, got {other:?}"),
    }
}

async fn nothing_within(sub: &mut Subscription, ms: u64) {
    if let Ok(ev) = tokio::time::timeout(Duration::from_millis(ms), sub.next()).await {
        panic!("expected nothing, got {ev:?}");
    }
}

pub async fn subscriber_receives_publishes_in_order(t: &BusUnderTest) {
    let mut sub = t.bus.subscribe(&room("order")).await.unwrap();
    for seq in 1..=50 {
        t.bus.publish(delivery("order", seq)).await.unwrap();
    }
    for seq in 1..=50 {
        assert_eq!(next(&mut sub).await, delivery("order", seq));
    }
}

pub async fn subscription_sees_only_its_room(t: &BusUnderTest) {
    let mut a = t.bus.subscribe(&room("iso-a")).await.unwrap();
    t.bus.publish(delivery("iso-b", 1)).await.unwrap();
    t.bus.publish(delivery("iso-a", 1)).await.unwrap();
    assert_eq!(next(&mut a).await.room, room("iso-a"));
    nothing_within(&mut a, 100).await;
}

pub async fn every_subscriber_receives(t: &BusUnderTest) {
    let mut a = t.bus.subscribe(&room("fan")).await.unwrap();
    let mut b = t.bus.subscribe(&room("fan")).await.unwrap();
    t.bus.publish(delivery("fan", 1)).await.unwrap();
    assert_eq!(next(&mut a).await.seq, 1);
    assert_eq!(next(&mut b).await.seq, 1);
}

pub async fn publish_without_subscribers_succeeds(t: &BusUnderTest) {
    t.bus.publish(delivery("nobody", 1)).await.unwrap();
    // A subscription taken afterwards sees only later publishes.
    let mut sub = t.bus.subscribe(&room("nobody")).await.unwrap();
    t.bus.publish(delivery("nobody", 2)).await.unwrap();
    assert_eq!(next(&mut sub).await.seq, 2);
}

pub async fn dropped_subscription_does_not_block_others(t: &BusUnderTest) {
    let gone = t.bus.subscribe(&room("drop")).await.unwrap();
    let mut kept = t.bus.subscribe(&room("drop")).await.unwrap();
    drop(gone);
    for seq in 1..=3 {
        t.bus.publish(delivery("drop", seq)).await.unwrap();
    }
    for seq in 1..=3 {
        assert_eq!(next(&mut kept).await.seq, seq);
    }
}

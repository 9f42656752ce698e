//! A stage whose handlers are replaced while serving: a configuration reload swaps in the stages
//! it rebuilt (hosts, special names, forwarding rules and upstreams) without touching the stages
//! before it (the cache keeps its entries) or the listeners.
//!
//! Each query takes the chain in force when it reaches this stage and finishes on it, so a swap
//! is atomic per query: a query never sees half of an old configuration and half of a new one.
//! The old chain is dropped when its last query is done. Reading the current chain takes no lock
//! (`arc_swap`), so every worker can do it per query.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{BoxFuture, Chain, Handler, HandlerResult, Next, Origin, Request};
use crate::wire::QueryView;

/// A handler that runs whichever chain was last given to it; it ignores the stages after it
/// (put it last).
pub struct Swappable {
    current: ArcSwap<Chain>,
}

impl Swappable {
    /// Runs `chain` until the next [`Swappable::swap`].
    pub fn new(chain: Chain) -> Swappable {
        Swappable {
            current: ArcSwap::from_pointee(chain),
        }
    }

    /// From now on, queries reaching this stage run `chain`; those already in it finish on the
    /// chain they started with.
    pub fn swap(&self, chain: Chain) {
        self.current.store(Arc::new(chain));
    }

    /// The chain in force.
    pub fn current(&self) -> Arc<Chain> {
        self.current.load_full()
    }
}

impl Handler for Swappable {
    fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        let chain = self.current.load_full();
        Box::pin(async move { chain.handle(req).await })
    }

    fn answer_fast(
        &self,
        query: &QueryView<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
    ) -> Option<Origin> {
        self.current.load().answer_fast(query, max_len, out)
    }

    fn name(&self) -> &'static str {
        "reloadable"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;
    use crate::handler::{local_answer, Protocol};
    use crate::wire::{Message, Name, RType, Rcode};

    /// Answers every query with a fixed rcode.
    struct Fixed(Rcode);

    impl Handler for Fixed {
        fn handle<'a>(&'a self, req: &'a Request, _: Next<'a>) -> BoxFuture<'a, HandlerResult> {
            let mut m = Message::response_to(&req.query);
            m.set_rcode(self.0);
            Box::pin(std::future::ready(local_answer(&m)))
        }
        fn name(&self) -> &'static str {
            "fixed"
        }
    }

    fn chain_of(rcode: Rcode) -> Chain {
        Chain::new(vec![Arc::new(Fixed(rcode))])
    }

    /// After a swap new queries run the new chain; a query that took the old chain keeps it.
    #[tokio::test]
    async fn a_swap_applies_to_queries_that_reach_the_stage_after_it() {
        let swap = Arc::new(Swappable::new(chain_of(Rcode::NOERROR)));
        let outer = Chain::new(vec![swap.clone() as Arc<dyn Handler>]);
        let req = Request {
            query: Message::query("a.test".parse::<Name>().unwrap(), RType::A),
            client: None,
            protocol: Protocol::Udp,
        };
        let rcode = |r: HandlerResult| Message::parse(r.unwrap().wire()).unwrap().rcode();
        let before = swap.current();
        assert_eq!(rcode(outer.handle(&req).await), Rcode::NOERROR);
        swap.swap(chain_of(Rcode::REFUSED));
        assert_eq!(rcode(outer.handle(&req).await), Rcode::REFUSED);
        // The old chain is still whole for whoever holds it.
        assert_eq!(rcode(before.handle(&req).await), Rcode::NOERROR);
    }
}

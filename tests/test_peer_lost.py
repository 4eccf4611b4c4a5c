"""The runtime tells watching actors that a peer's connection was lost (runtime.messages.PeerLost).

Production: ProdNode.peer_lost, fed by TcpTransport.on_peer_lost (tests/test_transport.py covers the
transport).  Simulator: a node that crashes closes its connections, and a frame to a node that is
down is refused; a cut link carries neither.  Then what the actors do with it: a client's parked
allocation query and its heartbeat move to the next server at once, and a follower fails a request
it forwarded to a leader whose process died instead of waiting out forward_timeout_s.
"""

from __future__ import annotations

from typing import Any

import gevent

from runtime.messages import PeerLost
from runtime.prod import ProdNode
from sim.runtime import Scheduler
from tests.test_sim_network import Sink


def test_prod_node_tells_only_the_actors_watching_that_peer() -> None:
    node = ProdNode("n1", seed=1)
    got_a: list[Any] = []
    got_b: list[Any] = []
    node.spawn(Sink, "a", got_a)
    node.spawn(Sink, "b", got_b)
    try:
        node.watch_peer("s1:4647", "a")
        node.watch_peer("s1:4647", "a")  # twice is once
        node.watch_peer("s2:4647", "b")
        node.peer_lost("s1:4647", "connection closed by the peer")
        node.peer_lost("s3:4647", "connect failed")  # nobody watches: nothing
        node.unwatch_peer("s2:4647", "b")
        node.peer_lost("s2:4647", "connect failed")
        deadline = gevent.Timeout(5)
        with deadline:
            while not got_a:
                gevent.sleep(0.005)
        gevent.sleep(0.01)
        assert got_a == [PeerLost(node="s1:4647", reason="connection closed by the peer")]
        assert got_b == []
        assert node.stats["peer_lost"] == 1
    finally:
        node.stop_all()


def sim_pair() -> tuple[Scheduler, list[Any]]:
    sched = Scheduler(5)
    got: list[Any] = []
    sched.add_node("srv", lambda env: env.spawn(Sink, "sink", []))
    sched.add_node("cli", lambda env: env.spawn(Sink, "sink", got))
    sched.nodes["cli"].env.watch_peer("srv", "sink")
    return sched, got


def test_sim_crash_tells_the_watchers_one_latency_later() -> None:
    sched, got = sim_pair()
    sched.run_for(1.0)
    sched.nodes["srv"].crash()
    at = sched.now
    sched.run_for(1.0)
    assert got == [PeerLost(node="srv", reason="connection closed by the peer")]
    assert sched.network.stats["peer_lost"] == 1 and sched.now > at


def test_sim_frame_to_a_down_node_is_refused_and_a_cut_link_says_nothing() -> None:
    sched, got = sim_pair()
    sched.nodes["srv"].crash()
    sched.run_for(1.0)
    got.clear()
    sched.nodes["cli"].env.send("srv", "sink", PeerLost(node="x", reason="y"))  # any message
    sched.run_for(1.0)
    assert got == [PeerLost(node="srv", reason="connection refused", unsent=True)]
    sched.nodes["srv"].restart()
    sched.network.partition(["srv"], ["cli"])
    got.clear()
    sched.nodes["srv"].crash()
    sched.run_for(1.0)
    assert got == []  # the FIN never crossed the cut


def test_sim_notice_for_an_earlier_incarnation_is_not_delivered() -> None:
    sched, got = sim_pair()
    sched.nodes["srv"].crash()
    sched.nodes["cli"].restart()  # before the notice arrives: the new incarnation watches nothing
    sched.run_for(1.0)
    assert got == []


def test_a_follower_fails_what_it_forwarded_to_a_leader_that_died_without_waiting() -> None:
    from sim.raft_cluster import RaftCluster

    c = RaftCluster(7, 3)
    c.run(5.0)
    leader = c.leader()
    assert leader is not None
    follower = next(n for n in c.names if n != leader)
    write = c.invoke("write", "k", 1, via=follower)
    read = c.invoke("read", "k", via=follower)
    c.run(0.0005)  # the follower forwards them (a link takes 1-10 ms)
    c.crash(leader)  # as the forwards travel: the follower cannot know whether they arrived
    c.run(0.02)  # the connection's end reaches the follower; the election has not begun
    assert write.future._done and read.future._done
    assert str(write.future._exc[1]) == "connection to the leader lost: connection closed by the peer"
    assert str(read.future._exc[1]) == "leadership lost"  # its caller makes it again
    peer = c.live_peers()[follower]
    assert peer.core.leader == leader and peer.stats["forwards_lost"] == 1
    # Sent now, to the leader it still knows: refused at connect, so never taken -- "No cluster
    # leader", which the HTTP edge holds and makes again -- long before forward_timeout_s (5 s).
    write = c.invoke("write", "k", 2, via=follower)
    c.run(0.05)
    assert str(write.future._exc[1]) == "No cluster leader"
    assert peer.stats["forwards_unsent"] == 1 and peer.stats["reads_leader_lost"] == 1
    c.close()


def test_a_write_the_dead_leader_had_taken_fails_as_unknown_not_as_retryable() -> None:
    from sim.raft_cluster import RaftCluster

    c = RaftCluster(7, 3)
    c.run(5.0)
    leader = c.leader()
    assert leader is not None
    follower, other = [n for n in c.names if n != leader]
    for n in (follower, other):
        c.sched.network.hold(leader, n)  # the leader's AppendEntries wait: it appends, cannot commit
    write = c.invoke("write", "k", 1, via=follower)
    c.run(0.05)  # the forward reached the leader, which took it
    assert not write.future._done
    c.crash(leader)
    c.run(0.5)
    assert write.future._done
    # It may still commit under the next leader: nobody may make it again blindly.
    assert str(write.future._exc[1]) == "connection to the leader lost: connection closed by the peer"
    assert c.live_peers()[follower].stats["forwards_lost"] == 1
    c.close()


def test_a_client_whose_server_restarts_asks_the_next_one_at_once() -> None:
    """The parked allocation query dies with its server; new work reaches the client in seconds."""
    from sim.client_cluster import ClusterConfig
    from sim.job_cluster import SYNC, JobCluster, JobClusterConfig, sim_job

    c = JobCluster(3, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=1)))
    c.run(30.0)
    client = c.clients[0]
    sync = c.actor(client, SYNC)
    asked = sync._watch_server
    assert sync._watch_req and asked in c.servers
    c.crash(asked)
    c.run(2.0)
    c.restart(asked)
    c.run(10.0)  # a new leader, if it was the leader
    c.register(sim_job("web", count=1, cpu=100))
    c.run(10.0)  # well under the query's own bound (wait_s + rpc_margin_s = 70 s)
    running = [a for a in c.allocs("web") if a["ClientStatus"] == "running"]
    assert len(running) == 1, c.allocs("web")
    assert sync.stats["query_failures"] >= 1  # the lost query, counted as a failed one
    c.close()


def test_a_client_cut_off_from_its_server_moves_its_query_with_its_heartbeat() -> None:
    """A partition gives no notice; the heartbeat that finds the server silent (no answer within
    rpc_attempt_timeout_s) tells the allocation query too, which goes on to the next server --
    both use the node's one preferred server, as Nomad's client does."""
    from sim.client_cluster import CLIENT, ClusterConfig
    from sim.job_cluster import SYNC, JobCluster, JobClusterConfig, sim_job

    c = JobCluster(5, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=1)))
    c.run(30.0)
    client = c.clients[0]
    node, sync = c.actor(client, CLIENT), c.actor(client, SYNC)
    server = sync._watch_server
    assert node.servers[0] == server and sync.servers == node.servers
    c.sched.network.partition([client], [server])
    c.run(1.0)
    c.register(sim_job("web", count=1, cpu=100))
    # Well under the query's own bound (wait_s + rpc_margin_s = 70 s): a heartbeat interval (the
    # TTL, 10 s for one node) plus the attempt timeout, then a query on the next server.
    c.run(25.0)
    running = [a for a in c.allocs("web") if a["ClientStatus"] == "running"]
    assert len(running) == 1, (c.allocs("web"), sync.stats)
    assert sync._watch_server != server and node.stats["timeouts"] >= 1
    c.close()

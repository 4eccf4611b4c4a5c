"""A picture of a run: each server's role and term over virtual time, faults and commits.

``Timeline.sample`` is called as the run advances; ``write_html`` draws an
SVG in a self-contained HTML page: one lane per server (green: leader,
grey: follower, orange: candidate, black: down), the term written where it
changes, a red strip under a lane while the network cuts that node off (a
partition, one-way or both; hover for whom), a red line per fault with its
label, and the highest commit index as a line underneath.  It is what an
engineer looks at instead of a trace.
"""

from __future__ import annotations

import html
from typing import Any

COLORS = {"leader": "#2e9d4f", "follower": "#c8c8c8", "candidate": "#f0a030", "pre-candidate": "#f6d08a",
          "down": "#222222", "ready": "#7cc7e8", "node-down": "#d03030", "initializing": "#e0e0ff",
          "gone": "#ffffff"}


class Timeline:
    def __init__(self, names: tuple[str, ...], every_s: float = 0.05, note: str = "") -> None:
        self.names = names
        self.note = note  # a line under the title (what the picture leaves out)
        self.every_s = every_s
        self.next_at = 0.0
        self.samples: list[tuple[float, dict[str, tuple[str, int]], int]] = []
        self.cuts: list[tuple[float, dict[str, str]]] = []  # when, lane -> who it is cut off from
        self.events: list[tuple[float, str]] = []

    def maybe_sample(self, cluster: Any) -> None:
        now = cluster.sched.now
        if now < self.next_at:
            return
        self.next_at = now + self.every_s
        peers = cluster.live_peers()
        lanes = {n: ((peers[n].core.role, peers[n].core.term) if n in peers else ("down", 0))
                 for n in self.names}
        node_lanes = getattr(cluster, "timeline_lanes", None)
        if node_lanes is not None:  # clusters with client nodes add one lane per client
            lanes.update(node_lanes())
        commit = max((p.core.commit for p in peers.values()), default=0)
        self.samples.append((now, lanes, commit))
        cuts = self._cuts(cluster)
        agents_down = getattr(cluster, "timeline_agents_down", None)
        if agents_down is not None:  # a client lane shows the servers' view; its agent's outage on top
            for n in agents_down():
                cuts[n] = f"{n} agent down" + (f"; {cuts[n]}" if n in cuts else "")
        self.cuts.append((now, cuts))

    def _cuts(self, cluster: Any) -> dict[str, str]:
        """For each lane the network cuts off (partitions, held links): whom it cannot reach or hear."""
        net = cluster.sched.network
        cut = getattr(net, "_cut", ())
        held = getattr(net, "_held", {})
        if not cut and not held:
            return {}
        out = {}
        for n in self.names:
            to = sorted({b for a, b in cut if a == n})
            frm = sorted({a for a, b in cut if b == n})
            hold = sorted({b for a, b in held if a == n})
            parts = []
            if to and to == frm:
                parts.append(f"{n} cut off from {','.join(to)}")
            else:
                if to:
                    parts.append(f"{n} cannot send to {','.join(to)}")
                if frm:
                    parts.append(f"{n} cannot hear {','.join(frm)}")
            if hold:
                parts.append(f"{n}'s messages to {','.join(hold)} held")
            if parts:
                out[n] = "; ".join(parts)
        return out

    def event(self, t: float, text: str) -> None:
        self.events.append((t, text))

    def write_html(self, path: str, title: str) -> None:
        """The picture as an HTML page, or as the bare SVG image when *path* ends in ``.svg``."""
        page = self.render(title)
        if path.lower().endswith(".svg") and "<svg" in page:
            page = page[page.index("<svg"):page.rindex("</svg>") + len("</svg>")] + "\n"
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)

    def render(self, title: str) -> str:
        if not self.samples:
            return "<html><body>no samples</body></html>"
        t_end = self.samples[-1][0] or 1.0
        width, lane_h, top = 1100, 28, 30
        left = max(60, 8 * max((len(n) for n in self.names), default=0) + 10)  # room for the lane names
        x = lambda t: left + (width - left - 10) * t / t_end  # noqa: E731
        parts = []
        for i, name in enumerate(self.names):
            y = top + i * (lane_h + 6)
            parts.append(f'<text x="5" y="{y + 18}" font-size="13">{html.escape(name)}</text>')
            prev_state, prev_t, prev_term = None, 0.0, None
            for t, lanes, _ in self.samples + [(t_end + 1e-9, {}, 0)]:
                state = lanes.get(name, ("down", 0)) if lanes else None
                if state != prev_state:
                    if prev_state is not None:
                        parts.append(f'<rect x="{x(prev_t):.1f}" y="{y}" width="{max(0.5, x(t) - x(prev_t)):.1f}" '
                                     f'height="{lane_h}" fill="{COLORS.get(prev_state[0], "#888")}">'
                                     f'<title>{name} {prev_state[0]} term {prev_state[1]} '
                                     f'from {prev_t:.2f}s</title></rect>')
                        if prev_state[1] != prev_term and prev_state[0] != "down" and prev_state[1] > 0:
                            parts.append(f'<text x="{x(prev_t) + 2:.1f}" y="{y + 18}" font-size="10">'
                                         f't{prev_state[1]}</text>')
                            prev_term = prev_state[1]
                    prev_state, prev_t = state, t
            prev_cut, prev_t = "", 0.0
            for t, cuts in [*self.cuts, (t_end + 1e-9, {})]:
                desc = cuts.get(name, "")
                if desc != prev_cut:
                    if prev_cut:
                        agent = "agent down" in prev_cut
                        parts.append(f'<rect x="{x(prev_t):.1f}" y="{y if agent else y + lane_h - 6}" '
                                     f'width="{max(0.5, x(t) - x(prev_t)):.1f}" '
                                     f'height="{10 if agent else 6}" '
                                     f'fill="{"#666666" if agent else "#d03030"}">'
                                     f'<title>{html.escape(prev_cut)} from {prev_t:.2f}s to {t:.2f}s'
                                     '</title></rect>')
                    prev_cut, prev_t = desc, t
        chart_top = top + len(self.names) * (lane_h + 6) + 20
        chart_h = 120
        max_commit = max(c for _, _, c in self.samples) or 1
        pts = " ".join(f"{x(t):.1f},{chart_top + chart_h - chart_h * c / max_commit:.1f}"
                       for t, _, c in self.samples)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#3060c0" stroke-width="1.5"/>')
        parts.append(f'<text x="5" y="{chart_top + 12}" font-size="11">commit</text>'
                     f'<text x="5" y="{chart_top + 26}" font-size="10">max {max_commit}</text>')
        bottom = chart_top + chart_h
        for i, (t, text) in enumerate(self.events):
            parts.append(f'<line x1="{x(t):.1f}" y1="{top - 5}" x2="{x(t):.1f}" y2="{bottom}" stroke="#d03030" '
                         f'stroke-width="1" opacity="0.6"><title>{t:.2f}s {html.escape(text)}</title></line>')
            parts.append(f'<text x="{x(t) + 2:.1f}" y="{bottom + 14 + 12 * (i % 4)}" font-size="10" '
                         f'fill="#d03030">{html.escape(text)}</text>')
        for s in range(0, int(t_end) + 1, max(1, int(t_end // 10) or 1)):
            parts.append(f'<text x="{x(s):.1f}" y="{top - 10}" font-size="10">{s}s</text>')
        height = bottom + 80
        legend = " ".join(f'<span style="background:{c};padding:0 8px;margin:0 4px"></span>{k}'
                          for k, c in COLORS.items())
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
                f"<body style='font-family:sans-serif'><h3>{html.escape(title)}</h3>"
                + (f"<p>{html.escape(self.note)}</p>" if self.note else "") + f"<div>{legend}"
                f"<span style='background:#d03030;padding:0 8px;margin:0 4px'></span>"
                f"partitioned (hover: from whom)"
                f"<span style='background:#666666;padding:0 8px;margin:0 4px'></span>"
                f"client agent down (its lane: the servers' view of the node)"
                f"<span style='color:#d03030;margin-left:12px'>| fault</span>"
                f"<span style='color:#3060c0;margin-left:12px'>— highest commit index</span></div>"
                f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>{''.join(parts)}"
                f"</svg></body></html>")

"""Telegram commands for the running service: ``/status /positions /pnl /pause /resume /kill``.

:class:`TelegramCommands` long-polls the Bot API's ``getUpdates`` (``service.telegram.api_url``) and answers with
``sendMessage``, only in the chats of ``service.telegram.chat_ids``: a message from any other chat gets no answer
and one log line (chat id and command only; never the bot token). Every command goes through the
:class:`~graphwiz_trader.service.state.ServiceState` (the same journal flags as ``graphwiz trading``):

- ``/status``: cycle, as-of, equity, drawdown, halted and why, model, data age;
- ``/positions``: held positions with value and weight;
- ``/pnl``: equity now against the run's first equity point and the last 24 points;
- ``/pause [reason]``, ``/resume [reason]``;
- ``/kill [flatten] [reason]``: halt and cancel open orders (``flatten``: close every position too).

A failing poll (network, HTTP error) is logged and retried after a growing pause (1 s doubling to 60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

from graphwiz_trader.config.settings import TelegramSettings
from graphwiz_trader.core.secrets import mask_secrets, register_secret
from graphwiz_trader.errors import GraphwizError

log = logging.getLogger(__name__)

__all__ = ["COMMANDS", "TelegramCommands", "TelegramError"]

COMMANDS = ("status", "positions", "pnl", "pause", "resume", "kill", "help")


class TelegramError(GraphwizError):
    """The Bot API answered with an error (its description; never the token)."""


class TelegramCommands:
    """Poll and answer (see the module docstring).

    Parameters
    ----------
    settings : ``service.telegram`` (a ``bot_token`` is required).
    state : the running service's state.
    """

    def __init__(self, settings: TelegramSettings, state: Any) -> None:
        if settings.bot_token is None:
            raise TelegramError("service.telegram.bot_token is not set (TELEGRAM_BOT_TOKEN)")
        register_secret(settings.bot_token)
        self.cfg = settings
        self.state = state
        self.allowed = {int(c) for c in settings.chat_ids}
        self.offset = 0
        self.ignored = 0
        self.answered = 0
        self._base = f"{settings.api_url.rstrip('/')}/bot{settings.bot_token.get_secret_value()}"
        self._session: aiohttp.ClientSession | None = None

    async def _call(self, method: str, payload: dict[str, Any], timeout_s: float) -> Any:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        async with self._session.post(f"{self._base}/{method}", json=payload,
                                      timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            data = await resp.json(content_type=None)
        if not isinstance(data, dict) or not data.get("ok"):
            desc = data.get("description") if isinstance(data, dict) else str(data)[:200]
            raise TelegramError(f"Telegram {method} failed: {mask_secrets(str(desc))}")
        return data.get("result")

    async def poll_once(self) -> int:
        """One ``getUpdates`` (long poll), every update handled; returns how many updates came."""
        updates = await self._call("getUpdates", {"offset": self.offset, "timeout": self.cfg.poll_timeout_s,
                                                  "allowed_updates": ["message"]},
                                   self.cfg.poll_timeout_s + self.cfg.http_timeout_s)
        for u in updates or []:
            self.offset = max(self.offset, int(u["update_id"]) + 1)
            msg = u.get("message") or {}
            text = str(msg.get("text") or "")
            chat = (msg.get("chat") or {}).get("id")
            if chat is None or not text.startswith("/"):
                continue
            await self.handle(int(chat), text)
        return len(updates or [])

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll until ``stop`` is set (or the task is cancelled)."""
        pause = 1.0
        try:
            while stop is None or not stop.is_set():
                try:
                    await self.poll_once()
                    pause = 1.0
                except (aiohttp.ClientError, TimeoutError, TelegramError, ValueError) as exc:
                    log.warning("Telegram polling failed: %s; retrying in %.0f s",
                                mask_secrets(f"{type(exc).__name__}: {exc}"), pause)
                    if stop is None:
                        await asyncio.sleep(pause)
                    else:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), timeout=pause)
                    pause = min(pause * 2, 60.0)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def handle(self, chat: int, text: str) -> str | None:
        """Answer one command from ``chat`` (None, with a log line, for a chat not on the allow-list)."""
        word, _, rest = text.strip().partition(" ")
        cmd = word[1:].split("@", 1)[0].lower()
        if chat not in self.allowed:
            self.ignored += 1
            log.warning("Telegram: /%s from chat %d ignored (not in service.telegram.chat_ids)", cmd[:32], chat)
            return None
        try:
            reply = await self._reply(cmd, rest.strip())
        except GraphwizError as exc:
            reply = f"/{cmd} failed: {mask_secrets(str(exc))}"
        log.info("Telegram: /%s from chat %d answered", cmd, chat)
        await self._call("sendMessage", {"chat_id": chat, "text": reply[:4000]}, self.cfg.http_timeout_s)
        self.answered += 1
        return reply

    async def _reply(self, cmd: str, rest: str) -> str:
        st = self.state
        if cmd == "status":
            s = st.snapshot()
            halted = f"HALTED: {'; '.join(s['reasons'])}" if s["halted"] else "trading"
            return (f"run {s['run_id']}: cycle {s['cycle']} at {s['as_of']}\nequity {_q(s['equity'])}, drawdown "
                    f"{_pct(s['drawdown'])}, gross {_pct(s['gross_exposure'])}\n{halted}\nmodel "
                    f"{s['model_version']}, data age {_secs(s['data_age_s'])}"
                    + (f"\nlast error: {s['last_error']}" if s.get("last_error") else ""))
        if cmd == "positions":
            pos = st.positions()
            if not pos:
                return "no positions"
            return "\n".join(f"{p['symbol']}: {p['qty']:.8g} @ {_q(p['price'])} = {_q(p['value_quote'])} "
                             f"({_pct(p['weight'])})" for p in pos)
        if cmd == "pnl":
            curve = st.equity_curve()
            if not curve:
                return "no equity recorded yet"
            first, last = curve[0]["equity"], curve[-1]["equity"]
            day = curve[-25]["equity"] if len(curve) > 24 else first
            return (f"equity {_q(last)}\nsince start ({curve[0]['ts']}): {_q(last - first)} ({_pct(last / first - 1)})"
                    f"\nlast 24 points: {_q(last - day)} ({_pct(last / day - 1)})\ndrawdown "
                    f"{_pct(curve[-1]['drawdown'])}")
        if cmd == "pause":
            r = await st.pause(rest or "paused from Telegram")
            return f"paused: {'; '.join(r['reasons'])}"
        if cmd == "resume":
            r = await st.resume(rest or "resumed from Telegram")
            return "resumed: new orders allowed" if not r["halted"] else f"still halted: {'; '.join(r['reasons'])}"
        if cmd == "kill":
            flatten = rest.split(" ", 1)[0].lower() == "flatten"
            reason = (rest.split(" ", 1)[1] if flatten and " " in rest else ("" if flatten else rest)) \
                or "kill from Telegram"
            r = await st.kill(flatten, reason)
            return (f"killed ({reason}): {r.get('cancelled', 0)} open order(s) cancelled"
                    + (f", {r.get('flatten_orders', 0)} flatten order(s) sent" if flatten else ""))
        return "commands: /status /positions /pnl /pause [reason] /resume [reason] /kill [flatten] [reason]"


def _q(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):,.2f}"


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.2f}%"


def _secs(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.0f} s"

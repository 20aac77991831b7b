"""Alerts of the service: always logged; also sent to Telegram, a Slack webhook and email (SMTP) when configured.

Triggers (:meth:`AlertManager.check_cycle`, thresholds in ``service.alerts``): a one-cycle equity loss of
``large_loss`` or more, a drawdown of ``drawdown`` or more, live accuracy below ``min_accuracy`` once the risk
window is full, a breaker that trips, data older than ``stale_data_s``; and (:meth:`AlertManager.exception`) an
exception in the loop.

Every alert has a key (``drawdown``, ``breaker:daily_loss``, ``exception:ExchangeUnavailableError``...): the same
key is sent at most once per ``dedupe_window_s``, and at most ``max_per_hour`` alerts are sent per rolling hour;
a suppressed alert is still logged (at INFO, saying why it was not sent). A channel that fails is logged and never
raises into the loop. Secrets (bot token, webhook URL, SMTP password) are registered with
:mod:`graphwiz_trader.core.secrets`, so they are masked in any log line, and are never put in a message.
"""

from __future__ import annotations

import asyncio
import logging
import math
import smtplib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import aiohttp

from graphwiz_trader.config.settings import AlertSettings, TelegramSettings
from graphwiz_trader.core.secrets import mask_secrets, register_secret
from graphwiz_trader.errors import GraphwizError

log = logging.getLogger(__name__)

__all__ = ["Alert", "AlertDeliveryError", "AlertManager"]

HOUR_S = 3600.0


class AlertDeliveryError(GraphwizError):
    """A channel refused an alert (logged by :meth:`AlertManager.send`, never raised into the loop)."""


@dataclass(frozen=True)
class Alert:
    """One alert: ``key`` (the dedupe key), ``severity`` (``warning`` or ``critical``), ``title``, ``text``."""

    key: str
    severity: str
    title: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        return f"[graphwiz {self.severity}] {self.title}\n{self.text}"


class AlertManager:
    """Raise, deduplicate, rate-limit and deliver alerts (see the module docstring).

    Parameters
    ----------
    alerts, telegram : ``service.alerts`` and ``service.telegram``.
    quality_window_bars : ``risk.model_quality_window_bars`` (the accuracy trigger waits for a full window).
    clock : monotonic seconds (tests pass their own).
    run_id : named in every message.
    """

    def __init__(self, alerts: AlertSettings, telegram: TelegramSettings, *, quality_window_bars: int = 1,
                 clock: Callable[[], float] = time.monotonic, run_id: str = "service") -> None:
        self.cfg = alerts
        self.tg = telegram
        self.quality_window_bars = int(quality_window_bars)
        self.clock = clock
        self.run_id = run_id
        for secret in (telegram.bot_token, alerts.slack_webhook_url, alerts.smtp_password):
            register_secret(secret)
        self._last_sent: dict[str, float] = {}
        self._sent_times: deque[float] = deque()
        self._prev_equity: float | None = None
        self._prev_breakers: dict[str, bool] = {}
        self.sent: list[Alert] = []          # delivered (at least logged and passed dedupe and the rate limit)
        self.suppressed = 0
        self.delivery_failures = 0
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------------------------------ channels
    @property
    def channels(self) -> list[str]:
        """The configured channels besides the log."""
        out = []
        if self.tg.bot_token is not None and self.tg.chat_ids:
            out.append("telegram")
        if self.cfg.slack_webhook_url is not None:
            out.append("slack")
        if self.cfg.smtp_host and self.cfg.email_to:
            out.append("email")
        return out

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.cfg.http_timeout_s))
        return self._session

    async def close(self) -> None:
        """Release the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------------------------------ triggers
    def check_cycle(self, result: dict[str, Any], snapshot: dict[str, Any]) -> list[Alert]:
        """The alerts a finished cycle triggers (not yet sent: pass each to :meth:`send`)."""
        out: list[Alert] = []
        c = self.cfg
        eq = _f(result.get("equity"))
        if self._prev_equity is not None and self._prev_equity > 0 and not math.isnan(eq):
            loss = 1.0 - eq / self._prev_equity
            if loss >= c.large_loss:
                out.append(Alert("large_loss", "critical", "large loss in one cycle",
                                 f"equity {self._prev_equity:.2f} -> {eq:.2f} ({loss:.2%}) at {result.get('as_of')}, "
                                 f"threshold {c.large_loss:.2%}", {"loss": loss}))
        if not math.isnan(eq):
            self._prev_equity = eq
        dd = _f(snapshot.get("drawdown"))
        if not math.isnan(dd) and dd >= c.drawdown:
            out.append(Alert("drawdown", "critical", "drawdown", f"drawdown {dd:.2%} from the peak at "
                             f"{result.get('as_of')}, threshold {c.drawdown:.2%}", {"drawdown": dd}))
        acc = _f(snapshot.get("model_accuracy"))
        if c.min_accuracy is not None and not math.isnan(acc) and acc < c.min_accuracy \
                and int(snapshot.get("model_quality_bars") or 0) >= self.quality_window_bars:
            out.append(Alert("accuracy_drop", "warning", "model accuracy dropped",
                             f"live direction accuracy {acc:.3f} over the last {self.quality_window_bars} bars is "
                             f"below {c.min_accuracy:.3f} (model {snapshot.get('model_version')})", {"accuracy": acc}))
        breakers = dict(snapshot.get("breakers") or {})
        for name, tripped in sorted(breakers.items()):
            if tripped and not self._prev_breakers.get(name, False):
                why = "; ".join(r for r in snapshot.get("reasons", []) if name.split("_")[0] in r) or name
                out.append(Alert(f"breaker:{name}", "critical", f"breaker tripped: {name}",
                                 f"{why}; new orders halted until `graphwiz trading resume` (or /resume)"))
        self._prev_breakers = breakers
        age = _f(snapshot.get("data_age_s"))
        if not math.isnan(age) and age > c.stale_data_s:
            out.append(Alert("stale_data", "warning", "stale data", f"the newest bar closed {age:.0f} s ago "
                             f"(threshold {c.stale_data_s:.0f} s)", {"data_age_s": age}))
        stale = [r for r in result.get("reasons", []) if str(r).startswith("stale data")]
        if stale and not any(a.key == "stale_data" for a in out):
            out.append(Alert("stale_data", "warning", "stale data", "; ".join(stale)))
        return out

    def exception(self, exc: BaseException, where: str) -> Alert:
        """The alert for an exception in the loop (its message masked of secrets)."""
        name = type(exc).__name__
        return Alert(f"exception:{name}", "critical", f"error in the service loop ({where})",
                     mask_secrets(f"{name}: {exc}"))

    # ------------------------------------------------------------------------------------------ sending
    def admit(self, alert: Alert) -> tuple[bool, str]:
        """Dedupe and rate limit: ``(send?, why not)``; records the send time when admitted."""
        now = self.clock()
        last = self._last_sent.get(alert.key)
        if last is not None and now - last < self.cfg.dedupe_window_s:
            return False, f"duplicate of an alert sent {now - last:.0f} s ago (window {self.cfg.dedupe_window_s:g} s)"
        while self._sent_times and now - self._sent_times[0] >= HOUR_S:
            self._sent_times.popleft()
        if len(self._sent_times) >= self.cfg.max_per_hour:
            return False, f"rate limit: {self.cfg.max_per_hour} alerts sent in the last hour"
        self._last_sent[alert.key] = now
        self._sent_times.append(now)
        return True, ""

    async def send(self, alert: Alert) -> bool:
        """Log the alert; when admitted (dedupe, rate limit), deliver it to every configured channel.
        Returns whether it was admitted. Never raises for a failing channel."""
        level = logging.ERROR if alert.severity == "critical" else logging.WARNING
        ok, why = self.admit(alert)
        if not ok:
            self.suppressed += 1
            log.info("alert %s not sent (%s): %s", alert.key, why, mask_secrets(alert.text))
            return False
        log.log(level, "ALERT %s [%s] %s: %s", alert.key, self.run_id, alert.title, mask_secrets(alert.text))
        self.sent.append(alert)
        text = mask_secrets(f"{alert.render()}\n(run {self.run_id})")
        jobs = []
        if "telegram" in self.channels:
            jobs.append(("telegram", self._telegram(text)))
        if "slack" in self.channels:
            jobs.append(("slack", self._slack(text)))
        if "email" in self.channels:
            jobs.append(("email", asyncio.to_thread(self._email, alert, text)))
        results = await asyncio.gather(*(j for _, j in jobs), return_exceptions=True)
        for (name, _), res in zip(jobs, results):
            if isinstance(res, BaseException):
                self.delivery_failures += 1
                log.warning("alert %s: the %s channel failed: %s", alert.key, name,
                            mask_secrets(f"{type(res).__name__}: {res}"))
        return True

    async def _post(self, url: str, payload: dict[str, Any], what: str) -> None:
        s = await self._http()
        async with s.post(url, json=payload) as resp:
            if resp.status >= 300:
                body = (await resp.text())[:200]
                raise AlertDeliveryError(f"{what} answered HTTP {resp.status}: {mask_secrets(body)}")

    async def _telegram(self, text: str) -> None:
        assert self.tg.bot_token is not None
        url = f"{self.tg.api_url.rstrip('/')}/bot{self.tg.bot_token.get_secret_value()}/sendMessage"
        for chat in self.tg.chat_ids:
            await self._post(url, {"chat_id": chat, "text": text[:4000], "disable_web_page_preview": True},
                             "the Telegram Bot API")

    async def _slack(self, text: str) -> None:
        assert self.cfg.slack_webhook_url is not None
        await self._post(self.cfg.slack_webhook_url.get_secret_value(), {"text": text}, "the Slack webhook")

    def _email(self, alert: Alert, text: str) -> None:
        c = self.cfg
        msg = EmailMessage()
        msg["Subject"] = f"[graphwiz {alert.severity}] {alert.title}"
        msg["From"] = c.email_from
        msg["To"] = ", ".join(c.email_to)
        msg.set_content(text)
        assert c.smtp_host is not None
        with smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=c.http_timeout_s) as smtp:
            if c.smtp_starttls:
                smtp.starttls()
            if c.smtp_user and c.smtp_password is not None:
                smtp.login(c.smtp_user, c.smtp_password.get_secret_value())
            smtp.send_message(msg)


def _f(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan

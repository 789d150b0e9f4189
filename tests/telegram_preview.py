"""t.me's preview markup (`/s/CHANNEL`), rendered for tests that need fresh dates or a changing channel.

The shape is that of tests/fixtures/telegram/sahel_relay.html, trimmed to what a message needs.
"""

import html
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Msg:
    id: int
    text: str
    at: datetime
    edited: bool = False
    forwarded_from: tuple[str, str] | None = None
    """A forward: (the original's author, its t.me link)."""


def preview_page(channel: str, messages: list[Msg]) -> str:
    """The preview page listing `messages` (give them oldest first, as t.me does)."""
    rows = []
    for m in messages:
        meta = "edited " if m.edited else ""
        forward = "" if m.forwarded_from is None else (
            '<div class="tgme_widget_message_forwarded_from accent_color">Forwarded from <a class="tgme_widget_message'
            f'_forwarded_from_name" href="{html.escape(m.forwarded_from[1])}"><span dir="auto">'
            f'{html.escape(m.forwarded_from[0])}</span></a></div>')
        rows.append(f"""
<div class="tgme_widget_message_wrap js-widget_message_wrap">
  <div class="tgme_widget_message text_not_supported_wrap js-widget_message" data-post="{channel}/{m.id}">
    <div class="tgme_widget_message_bubble">
      <div class="tgme_widget_message_author accent_color"><a class="tgme_widget_message_owner_name"
        href="https://t.me/{channel}"><span dir="auto">{channel}</span></a></div>{forward}
      <div class="tgme_widget_message_text js-message_text" dir="auto">{html.escape(m.text)}</div>
      <div class="tgme_widget_message_footer compact js-message_footer">
        <div class="tgme_widget_message_info short js-message_info">
          <span class="tgme_widget_message_views">1K</span><span class="tgme_widget_message_meta">{meta}<a
            class="tgme_widget_message_date" href="https://t.me/{channel}/{m.id}"><time
            datetime="{m.at.isoformat(timespec='seconds')}" class="time">{m.at:%H:%M}</time></a></span>
        </div>
      </div>
    </div>
  </div>
</div>""")
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{channel} – Telegram</title></head>'
            f'<body><main class="tgme_main"><section class="tgme_channel_history js-message_history">'
            f'{"".join(rows)}</section></main></body></html>')

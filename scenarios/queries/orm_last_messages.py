"""A conversation's history as the app loads it: the messages of Conversation.messages, which the
relationship's lazy loader selects whole."""

from bench.models import Conversation

SLA_CLASS = "history"
TWIN = "last_messages"
PARAMS = {"conversation_id": "conversation"}


def statement(p, session):
    conversation = session.attached(Conversation(id=p.conversation_id))
    return conversation.messages  # the loader's SELECT is what the app sends

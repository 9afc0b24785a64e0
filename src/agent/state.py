"""The graph's state: the conversation's messages, merged with `add_messages`."""

from langgraph.graph import MessagesState


class VeraState(MessagesState):
    """Vera's state is just the message list (stored in `conversations.messages`)."""

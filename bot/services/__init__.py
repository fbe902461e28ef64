"""The services behind a turn: alert delivery, timers, the staff and DSL lists, reconsideration."""

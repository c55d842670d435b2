mod ntfy;

"""What an operator runs against the broker, as ``accesswatch`` subcommands.

Creating and checking the pipeline's topics, loading reference data onto the
``ref.*`` topics, replaying an events file onto ``access.events``, tailing the
alert topic, printing the effective settings, and the ``accesswatch worker``
entry that starts a live worker. The worker itself is ``streams/``; this
package only drives it and the broker from the command line.
"""

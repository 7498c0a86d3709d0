# The model ``Blocker`` is now ``RecordedBlocker`` (``gate.rules.Blocker`` is the blocker a
# gate sees; this is its record). Its table keeps its name: the table is named first, so the
# rename that follows changes nothing in the database.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("taskmaster", "0008_fleet_roster"),
    ]

    operations = [
        migrations.AlterModelTable(
            name="blocker",
            table="taskmaster_blocker",
        ),
        migrations.RenameModel(
            old_name="Blocker",
            new_name="RecordedBlocker",
        ),
        migrations.AlterModelOptions(
            name="recordedblocker",
            options={"ordering": ["run", "first_seen", "pk"], "verbose_name": "blocker"},
        ),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("taskmaster", "0004_one_blocker_per_task")]

    operations = [
        migrations.AddConstraint(
            model_name="blocker",
            constraint=models.UniqueConstraint(
                fields=("run", "task_id", "worker"), name="taskmaster_blocker_once_per_task"
            ),
        ),
    ]
